"""`aisopod stack up` as a child process of a test or benchmark: free loopback ports, a
ready file, and an orderly stop. What the suites and `bench/` start their stacks with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aisopod_ops.launcher.paths import repo_root
from aisopod_ops.launcher.startreport import FAILED_MARKER, log_tail


def start_local_stack(
    state_dir: Path,
    *extra: str,
    timeout: float = 90.0,
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start the launcher on `state_dir` (with `extra` arguments, and `env` over this
    process's environment) and wait for its ready file; the launcher's console goes to
    `log_file` (default `<state_dir>-launcher.log` beside it). Raises RuntimeError with
    the console's tail when it does not come up."""
    ready = state_dir / "ready.json"
    log_path = log_file or state_dir.parent / f"{state_dir.name}-launcher.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aisopod_ops.cli",
                "stack",
                "up",
                "--http-port",
                "0",
                "--https-port",
                "0",
                "--state-dir",
                str(state_dir),
                "--ready-file",
                str(ready),
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=repo_root(),
            env={**os.environ, **env} if env else None,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return proc, json.loads(ready.read_text())
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_local_stack(proc)
    raise RuntimeError(f"the local stack did not come up:\n{start_failure(log_path, state_dir)}")


def start_failure(console_file: Path, state_dir: Path) -> str:
    """Why a stack did not come up: the launcher's own report in full (each child that was
    not ready: running or its exit codes, its probe's answer, its log's tail) after the
    console lines before it; when the launcher wrote none (it was stopped before its own
    deadline), the tail of every child's log."""
    text = console_file.read_text(errors="replace")
    head, marker, report = text.partition(FAILED_MARKER)
    if marker:
        return f"{head[-3000:]}{marker}{report}"
    logs = sorted((state_dir / "logs").glob("*.log"))
    tails = "\n".join(f"--- {path.name}:\n{log_tail(path, lines=15)}" for path in logs)
    return f"{text[-3000:]}\n(no report from the launcher; the children's logs)\n{tails}"


def stop_local_stack(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int | None:
    """SIGTERM (the launcher stops its children in order), SIGKILL after `timeout`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
