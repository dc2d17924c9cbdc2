"""`--small`: the launcher hosts the five Python services (and the Control UI) itself.

A separate services process would cost a small host a second interpreter: the launcher
alone idles at ~55 MiB RSS (config models, nats for the edge sync, `cryptography`), and
the services import nearly all of that again. Hosted here, they add ~30 MiB to it instead
of ~80 MiB beside it. Each service still has its own `ServiceHost`, port, NATS user,
readiness and drain (combined.py); nats-server and Traefik stay supervised children.

What this costs: the services are no longer a child the launcher can restart on its own.
When they end (a restart order from `update.run`, or a crash), the launcher stops the
children in order and starts itself again with the same arguments (`exec`: same pid, so a
supervisor above it sees one process throughout), which restarts the whole stack in a few
seconds. A crash within `CRASH_LOOP_S` of the start, or a service that failed to start,
ends the launcher with an error instead, rather than loop. The services' log lines go to
`logs/services.log`, as before; the launcher's own lines stay on its console.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from aisopod_ops.launcher.combined import (
    RESTART_EXIT_CODE,
    STARTUP_FAILED_EXIT_CODE,
    Plan,
    Services,
)
from aisopod_ops.launcher.process import POLL_S, ChildSpec

log = logging.getLogger("aisopod_ops.launcher")

CRASH_LOOP_S = 10.0
# The launcher's own loggers keep its console; everything else (the services, uvicorn,
# nats-py) is the services' and goes through their router to logs/services.log.
LAUNCHER_LOGGERS = ("aisopod_ops", "aisopod.edge")


@dataclass
class HostedServices:
    """Stands where the `services` child would: same name, group, probe and log file."""

    spec: ChildSpec
    plan: Plan
    # Called once when the services end without being asked to: with True when they asked
    # for a restart (or ran long enough that a restart is worth trying).
    on_exit: Callable[[bool], None]
    restarts: int = 0
    started_at: float = 0.0
    ready_after: float | None = None
    stopping: bool = False
    services: Services | None = field(default=None, repr=False)
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _log: TextIO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return os.getpid()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def state(self) -> str:
        """Alive or how it ended (a start-up failure report)."""
        if self._task is None:
            return "never started"
        return "running (in the launcher)" if not self._task.done() else "ended"

    async def start(self) -> None:
        self._environment()
        self._route_logs()
        self.started_at = time.monotonic()
        self.services = Services(self.plan)
        self._task = asyncio.create_task(self._run(self.services), name="hosted-services")

    def _environment(self) -> None:
        """The settings every service reads from the environment (as a child would get
        them); the per-service ones come from the plan."""
        for key in ("AISOPOD_NATS_PASSWORD", "AISOPOD_EDGE_SECRET"):
            os.environ.pop(key, None)
        os.environ.update({k: v for k, v in self.spec.env.items() if k.startswith("AISOPOD_")})

    def _route_logs(self) -> None:
        from aisopod.logs import ServiceRouter

        self.spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.spec.log_file, "a", buffering=1)  # noqa: SIM115 - kept open
        root = logging.getLogger()
        console = [h for h in root.handlers if not isinstance(h, ServiceRouter)]
        for name in LAUNCHER_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers = list(console)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        root.handlers = [ServiceRouter(stream=self._log)]

    async def _run(self, services: Services) -> None:
        try:
            code = await services.run()
        except Exception:
            log.exception("the hosted services failed")
            code = 1
        if self.stopping:
            return
        uptime = time.monotonic() - self.started_at
        # A service that failed to start would most likely fail again: stop, not loop.
        restart = code == RESTART_EXIT_CODE or (
            uptime > CRASH_LOOP_S and code != STARTUP_FAILED_EXIT_CODE
        )
        log.warning(
            "the hosted services ended with %s after %.0fs; %s (see %s)",
            code,
            uptime,
            "restarting the stack" if restart else "stopping",
            self.spec.log_file,
        )
        self.on_exit(restart)

    async def wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.alive and await self.spec.probe():
                self.ready_after = time.monotonic() - self.started_at
                return True
            await asyncio.sleep(POLL_S)
        return False

    async def stop(self) -> int | None:
        self.stopping = True
        if self.services is None or self._task is None:
            return None
        if not self._task.done():
            self.services.stop()
            done, _ = await asyncio.wait({self._task}, timeout=self.spec.stop_timeout_s)
            if not done:
                log.warning("the hosted services did not stop in time; stopping them now")
                self.services.stop()
                await asyncio.wait({self._task}, timeout=5.0)
        return 0
