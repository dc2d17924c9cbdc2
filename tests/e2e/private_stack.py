"""A private local stack started in the background while other browser tests run.

Starting a stack and stopping it each cost 15–30 s on a loaded 2-core machine, mostly
spent waiting on its processes. The restart test needs one of its own, so the stack starts
in a thread as soon as the shared stack is up (the first tests run meanwhile), and its stop
is only signalled after the test: the wait for it overlaps with the shared stack's own stop
at the end of the session.
"""

from __future__ import annotations

import json
import signal
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.conftest import StackHandle, seed_config, start_local_stack, stop_local_stack


class PrivateStack:
    def __init__(self, state_dir: Path, config: dict[str, Any], *args: str) -> None:
        state_dir.mkdir(parents=True)
        seed = state_dir.parent / f"{state_dir.name}-seed.yaml"
        seed.write_text(json.dumps(config))
        self.state_dir = state_dir
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="private-stack")
        self._started: Future[tuple[subprocess.Popen[bytes], dict]] = self._pool.submit(
            start_local_stack, state_dir, "--config", str(seed), *args
        )

    @classmethod
    def with_slow_model(cls, state_dir: Path, fake_base_url: str) -> PrivateStack:
        """The test seed config, agents on `fake/fake-small` (the fake upstream streams
        slowly on demand, `[[fake:chunk_delay_ms=…]]`; the echo provider cannot), one
        runtime and one http-api: only the ws-gateway needs two replicas."""
        config = seed_config(fake_base_url)
        config["models"]["agents"] = {"model": "fake/fake-small"}
        return cls(state_dir, config, "--scale", "runtime=1", "--scale", "http-api=1")

    def handle(self, timeout: float = 120.0) -> StackHandle:
        """Wait until the stack is ready."""
        proc, info = self._started.result(timeout)
        return StackHandle(
            **{k: info[k] for k in ("http_url", "https_url", "ws_url", "admin_token", "nats_url")},
            state_dir=self.state_dir,
            pids=info["pids"],
            launcher_pid=proc.pid,
        )

    def signal_stop(self) -> None:
        """Ask the launcher to stop everything (it drains in order); `stop` waits for it."""
        if self._started.done() and self._started.exception() is None:
            proc, _ = self._started.result()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        try:
            proc, _ = self._started.result(timeout=120)
        except Exception:
            return  # it never came up; start_local_stack stopped what it had started
        finally:
            self._pool.shutdown(wait=False)
        stop_local_stack(proc)
