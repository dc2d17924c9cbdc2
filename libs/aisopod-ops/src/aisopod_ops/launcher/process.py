"""One supervised child process: start, readiness probe, restart on death, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aisopod_ops.launcher")

Probe = Callable[[], Awaitable[bool]]

# Readiness polling period. A probe is one loopback GET (probe.py, ~0.15 ms of CPU); polling
# faster finds a ready child sooner but takes CPU from the children still starting.
POLL_S = 0.05
# How long a service finishes its work after SIGTERM (ServiceSettings.drain_timeout_s);
# Traefik's grace time and every stop timeout above a service are derived from it.
SERVICE_DRAIN_S = 30


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    probe: Probe
    stop_timeout_s: float = 35.0
    cwd: Path | None = None
    group: str = "core"
    # What the probe GETs, asked once more for the report when the child is not ready in
    # time (its /ready names the reasons); empty for a probe that is not one HTTP GET.
    probe_urls: tuple[str, ...] = ()


@dataclass
class Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    stopping: bool = False
    started_at: float = 0.0
    ready_after: float | None = None  # seconds from spawn to the first passed probe
    exit_codes: list[int] = field(default_factory=list)  # of each process that died
    # Called after a restart with the new process (the stack rewrites its pid record).
    on_restart: Callable[[Child], None] | None = field(default=None, repr=False)
    _watch: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def state(self) -> str:
        """Alive or how it ended, and what died before it (a start-up failure report)."""
        if self.proc is None:
            now = "never started"
        elif self.proc.returncode is None:
            now = f"running (pid {self.proc.pid})"
        else:
            now = f"exited with code {self.proc.returncode} (pid {self.proc.pid})"
        if self.exit_codes:
            codes = ", ".join(str(code) for code in self.exit_codes)
            now += f"; died {len(self.exit_codes)} times so far (exit codes {codes})"
        return now

    async def start(self) -> None:
        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.spec.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                env=self.spec.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=self.spec.cwd,
                # Ctrl-C reaches the launcher only; it stops the children in order.
                start_new_session=True,
            )
        finally:
            out.close()
        self.started_at = time.monotonic()
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._supervise(), name=f"watch-{self.spec.name}")

    async def _supervise(self) -> None:
        """Restart the child when it dies on its own, with a growing delay."""
        while True:
            assert self.proc is not None
            code = await self.proc.wait()
            if self.stopping:
                return
            self.exit_codes.append(code)
            self.restarts += 1
            uptime = time.monotonic() - self.started_at
            delay = 0.2 if uptime > 10 else min(0.2 * 2 ** min(self.restarts, 5), 5.0)
            log.warning(
                "%s (pid %s) exited with %s; restarting in %.1fs (see %s)",
                self.spec.name,
                self.proc.pid,
                code,
                delay,
                self.spec.log_file,
            )
            await asyncio.sleep(delay)
            if self.stopping:
                return
            await self.start()  # this task stays the watcher of the new process
            if self.on_restart is not None:
                self.on_restart(self)

    async def wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.alive and await self.spec.probe():
                self.ready_after = time.monotonic() - self.started_at
                return True
            await asyncio.sleep(POLL_S)
        return False

    def signal(self, sig: int) -> None:
        if self.alive and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    async def stop(self) -> int | None:
        self.stopping = True
        if self._watch is not None:
            self._watch.cancel()
        if not self.alive or self.proc is None:
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), self.spec.stop_timeout_s)
        except TimeoutError:
            log.warning(
                "%s did not stop in %.0fs; killing", self.spec.name, self.spec.stop_timeout_s
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return await self.proc.wait()
