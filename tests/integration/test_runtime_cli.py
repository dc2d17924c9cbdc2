"""`aisopod call`, `aisopod config`, `aisopod logs`: real WebSocket clients of the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REPO
from tests.support.control_writes import DEADLINE_S, cli_retry_after_s

pytestmark = pytest.mark.integration


def cli(stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "aisopod_ops.cli",
            *args,
            "--url",
            stack.http_url,
            "--token",
            stack.admin_token,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def cli_write(stack, *args: str) -> subprocess.CompletedProcess[str]:
    """A config write with the admin token, whose budget other tests share: after a
    control-write refusal, run again once the retry hint it printed has passed."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        done = cli(stack, *args)
        wait = cli_retry_after_s(done.stderr) if done.returncode else None
        if wait is None or time.monotonic() + wait > deadline:
            return done
        time.sleep(wait)  # the server's hint: the write fits once it has passed


@pytest.fixture(scope="module")
def gateway_speaks(stack) -> None:
    probe = cli(stack, "call", "health")
    assert probe.returncode == 0, probe.stderr


def test_call_prints_the_result(stack, gateway_speaks) -> None:
    done = cli(stack, "call", "status")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert "runtime" in status["services"]
    bad = cli(stack, "call", "no.such.method")
    assert bad.returncode == 1 and "-32601" in bad.stderr


def test_config_get_and_patch_round_trip(stack, gateway_speaks) -> None:
    got = cli(stack, "config", "get")
    assert got.returncode == 0, got.stderr
    before = json.loads(got.stdout)
    title = cli(stack, "config", "get", "--path", "ui.title")
    assert json.loads(title.stdout) == before["config"]["ui"]["title"]
    new = f"cli-{uuid.uuid4().hex[:6]}"
    patched = cli_write(stack, "config", "patch", json.dumps({"ui": {"title": new}}), "--apply")
    assert patched.returncode == 0, patched.stderr
    applied = json.loads(patched.stdout)
    assert all(applied["applied"].values())
    assert json.loads(cli(stack, "config", "get", "--path", "ui.title").stdout) == new
    back = cli_write(
        stack, "config", "patch", json.dumps({"ui": {"title": before["config"]["ui"]["title"]}})
    )
    assert back.returncode == 0, back.stderr


def test_logs_prints_the_newest_lines(stack, gateway_speaks) -> None:
    done = cli(stack, "logs", "-n", "5", "--service", "runtime", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert 0 < len(lines) <= 5 and {line["service"] for line in lines} == {"runtime"}
