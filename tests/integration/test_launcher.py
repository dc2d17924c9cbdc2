"""The launcher's own contract: ready file, restart of a dead child, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_local_stack, stop_local_stack
from tests.support.listening import listening
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_restart_of_dead_child_and_sigterm_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    proc, info = start_local_stack(
        state, "--replicas", "1", "--nats-monitor", "--host", "127.0.0.1"
    )
    try:
        assert info["http_url"].startswith("http://127.0.0.1:")
        # Ready means healthy: the first `health` already counts every service.
        health = asyncio.run(_health(info["ws_url"], info["admin_token"]))
        assert health["ok"] is True, health
        assert all(s["ok"] and s["instances"] == 1 for s in health["services"].values()), health
        assert set(info) >= {"http_url", "https_url", "ws_url", "admin_token", "nats_url"}
        assert (state / "secrets" / "admin-token").stat().st_mode & 0o077 == 0
        pids = sorted({pid for group in info["pids"].values() for pid in group})
        # nats, 5 services in 4 processes (auth and ratelimit share one), caddy, traefik.
        assert len(pids) == 7
        assert info["pids"]["auth"] == info["pids"]["ratelimit"]
        # Monitoring asked for: on the stack's host only, beside the client port.
        (nats_pid,) = info["pids"]["nats"]
        nats_sockets = listening(nats_pid)
        assert {address for address, _ in nats_sockets} == {"127.0.0.1"}
        client_port = int(info["nats_url"].rsplit(":", 1)[1])
        (monitor_port,) = {port for _, port in nats_sockets} - {client_port}
        healthz = httpx.get(f"http://127.0.0.1:{monitor_port}/healthz", timeout=5)
        assert healthz.status_code == 200
        # The process of auth and ratelimit dies: the launcher restarts it (both).
        victim = info["pids"]["ratelimit"][0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        restarted = False
        while time.monotonic() < deadline and not restarted:
            text = (tmp_path / "state-launcher.log").read_text()
            restarted = "auth+ratelimit" in text and "restarting" in text
            time.sleep(0.1)
        assert restarted
        assert httpx.get(f"{info['http_url']}/health", timeout=5).status_code == 200
        # The record `aisopod stack status` reads names the new process.
        deadline = time.monotonic() + 10
        record = json.loads((state / "stack.json").read_text())
        while record["children"]["auth+ratelimit"] == victim and time.monotonic() < deadline:
            time.sleep(0.1)
            record = json.loads((state / "stack.json").read_text())
        new_pid = record["children"]["auth+ratelimit"]
        assert new_pid != victim and _alive(new_pid)
        assert record["pids"]["ratelimit"] == record["pids"]["auth"] == [new_pid]
        ready_urls = [record["service_urls"][s][0] + "/ready" for s in ("auth", "ratelimit")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(_answers(url) for url in ready_urls):
            time.sleep(0.1)
        assert all(_answers(url) for url in ready_urls)
        pids.append(new_pid)
        # The supervising process stayed lean through start-up and the restart: what only
        # writing the stack's files needs was loaded in a forked child (forked.py).
        assert not _heavy_libraries(proc.pid)
    finally:
        code = stop_local_stack(proc)
    assert code == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)]
    assert not _processes_mentioning(str(state))  # the restarted child too
    assert not (state / "stack.json").exists()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _heavy_libraries(pid: int) -> set[str]:
    """The compiled libraries of pydantic and `cryptography` mapped into `pid`."""
    with open(f"/proc/{pid}/maps") as maps:
        paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    return {p for p in paths if "pydantic_core" in p or "/cryptography/" in p}


def test_stack_up_refuses_a_bind_address_that_is_not_an_ip(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aisopod_ops.cli", "stack", "up", "--host", "example.org"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"AISOPOD_STATE_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "--host" in result.stderr and "not an IP address" in result.stderr


async def _health(ws_url: str, token: str) -> dict:
    async with await WsClient.connect(ws_url, token=token) as ws:
        return await ws.call("health")


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line or environment mention `text`."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in blob and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found
