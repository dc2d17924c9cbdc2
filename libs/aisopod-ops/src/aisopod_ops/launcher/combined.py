"""All five Python services in one process: `aisopod stack up --small`.

Each service keeps what makes it a service: its own `ServiceHost` (own NATS connection
and NATS user, so the same permissions as in its own process), its own port, readiness,
drain and log stream. They share one interpreter and one event loop, which is what a small
host cannot afford five times (~40 MiB per Python process before any service code).

`Services` builds them from a plan that names each service's port, instance and NATS
password file (the rest of the settings come from the environment, as for a lone
service), and optionally the Control UI's port (control_ui.py). `aisopod stack up --small`
hosts them in the launcher's own process (hosted.py); `python -m
aisopod_ops.launcher.combined PLAN.json` runs them as a process of their own, where
SIGTERM drains every service at once, then stops them, and a restart order (update.run) to
any of them ends the process with RESTART_EXIT_CODE.

What differs from separate processes: one crash takes all five down, and `/metrics` of
each port shows the process-wide registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from aisopod.services import ServiceName

if TYPE_CHECKING:  # the launcher imports the plan models only, not the services' stack
    from aisopod.host import ServiceHost
    from aisopod.settings import ServiceSettings

RESTART_EXIT_CODE = 75
# A lone service's code for a failed or refused start (aisopod.host; not imported: the
# launcher imports the plan models only).
STARTUP_FAILED_EXIT_CODE = 3


class PlannedService(BaseModel):
    service: ServiceName
    port: int
    instance: str
    nats_password_file: Path
    # Only the services Traefik sends requests to hold the edge proof's secret.
    edge_secret_file: Path | None = None


class PlannedUi(BaseModel):
    """The Control UI's static server in this process instead of Caddy (control_ui.py)."""

    host: str
    port: int
    root: Path
    openclaw_root: Path | None = None


class Plan(BaseModel):
    services: list[PlannedService]
    ui: PlannedUi | None = None


def _settings(planned: PlannedService, cls: type[ServiceSettings] | None = None) -> ServiceSettings:
    from aisopod.settings import ServiceSettings

    cls = cls or ServiceSettings
    password = planned.nats_password_file.read_text().strip()
    edge_file = planned.edge_secret_file
    return cls(
        service=planned.service.value,
        port=planned.port,
        instance=planned.instance,
        nats_user=planned.service.value,
        nats_password=SecretStr(password),
        edge_secret=SecretStr(edge_file.read_text().strip()) if edge_file else None,
    )


class _Served:
    """A service behind its own HTTP server: the probe server (auth, ratelimit, runtime)
    or uvicorn (http-api); both stop through `should_exit` / `force_exit`."""

    def __init__(self, host: ServiceHost, app: Any) -> None:
        from aisopod.probeserver import ProbeApp, ProbeServer

        self.host = host
        self.server: Any
        if isinstance(app, ProbeApp):
            self.server = ProbeServer(app)
        else:
            from aisopod.app import uvicorn_server

            self.server = uvicorn_server(host, app)

    async def run(self) -> None:
        try:
            await self.server.serve()
        except SystemExit as exc:
            # uvicorn ends a failed start (lifespan, bind) with sys.exit(3); out of a task
            # that would end the whole event loop, the other services and the launcher's
            # shutdown of its children with it. Here it is one service's failed start.
            if exc.code != STARTUP_FAILED_EXIT_CODE:
                raise

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    def stop(self, now: bool) -> None:
        self.server.should_exit = True
        if now:
            self.server.force_exit = True


class _WsGateway:
    """ws-gateway: its own listener, stopped by an event."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        from aisopod_ws_gateway.main import run

        await run(self.host, self.stopped, signals=False)

    def stop(self, now: bool) -> None:
        self.stopped.set()


class _ControlUi:
    """The UI's static files on their own port (uvicorn, no ServiceHost: nothing to drain,
    it stops once the services have drained)."""

    def __init__(self, planned: PlannedUi) -> None:
        import uvicorn

        from aisopod.app import QuietServer
        from aisopod_ops.launcher.control_ui import ControlUi

        app = ControlUi(planned.root, planned.openclaw_root)
        config = uvicorn.Config(
            app,
            host=planned.host,
            port=planned.port,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=True,
        )
        self.server = QuietServer(config)

    async def run(self) -> None:
        await self.server.serve()

    def stop(self, now: bool) -> None:
        self.server.should_exit = True
        if now:
            self.server.force_exit = True


def _build(planned: PlannedService) -> tuple[_Served | _WsGateway, Any]:
    """The service's runner and, for auth, its service object (whose `started` says
    whether it refused to start)."""
    name = planned.service
    if name is ServiceName.AUTH:
        from aisopod_auth.main import build as build_auth
        from aisopod_auth.service import AuthSettings

        host, app, auth = build_auth(_settings(planned, AuthSettings))  # type: ignore[arg-type]
        return _Served(host, app), auth
    if name is ServiceName.RATELIMIT:
        from aisopod_ratelimit.main import build as build_ratelimit

        return _Served(*build_ratelimit(_settings(planned))), None
    if name is ServiceName.RUNTIME:
        from aisopod_runtime.main import build as build_runtime

        return _Served(*build_runtime(_settings(planned))), None
    if name is ServiceName.HTTP_API:
        from aisopod_http_api.main import HttpApiSettings
        from aisopod_http_api.main import build as build_http_api

        return _Served(*build_http_api(_settings(planned, HttpApiSettings))), None
    if name is ServiceName.WS_GATEWAY:
        from aisopod_ws_gateway.main import build as build_ws
        from aisopod_ws_gateway.service import WsGatewaySettings

        return _WsGateway(build_ws(_settings(planned, WsGatewaySettings))), None
    raise ValueError(f"{name} is not a Python service")


class Services:
    """The planned services (and the UI server) built in this process, run together until
    one ends or `stop` is called."""

    def __init__(self, plan: Plan) -> None:
        self.built = [_build(planned) for planned in plan.services]
        self.runners = [runner for runner, _ in self.built]
        self.ui = _ControlUi(plan.ui) if plan.ui is not None else None
        self.stoppable: list[_Served | _WsGateway | _ControlUi] = [
            *self.runners,
            *([self.ui] if self.ui else []),
        ]
        self._stopping: list[asyncio.Task[None]] = []

    async def _drain_then_stop(self) -> None:
        await asyncio.gather(*(r.host.drain() for r in self.runners), return_exceptions=True)
        for runner in self.stoppable:
            runner.stop(now=False)

    def stop(self) -> None:
        """Drain every service at once, then stop them; called again: stop now."""
        if self._stopping:
            for runner in self.stoppable:
                runner.stop(now=True)
            return
        loop = asyncio.get_running_loop()
        self._stopping.append(loop.create_task(self._drain_then_stop()))

    async def run(self) -> int:
        """0 when stopped, RESTART_EXIT_CODE on a restart order, STARTUP_FAILED_EXIT_CODE
        when a service failed or refused to start, 1 when a service ended on its own."""
        from aisopod.logs import current_service

        loop = asyncio.get_running_loop()
        tasks = []
        for runner in self.runners:
            runner.host.set_stopper(self.stop)
            # Each service's tasks inherit this context: their log records carry its name.
            context = contextvars.copy_context()
            context.run(current_service.set, runner.host.name.value)
            tasks.append(loop.create_task(runner.run(), context=context))
        if self.ui is not None:
            tasks.append(loop.create_task(self.ui.run(), name="control-ui"))
        # One service ending on its own (a refused start, a crash) ends them all: they are
        # supervised as one.
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        unexpected = not self._stopping
        if unexpected:
            self.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        failed = [t for t in done if t.exception() is not None]
        for task in failed:
            print(f"service failed: {task.exception()!r}", file=sys.stderr, flush=True)
        # Only those that ended first: the others were stopped, maybe before they started.
        not_started = [
            runner.host.name.value
            for runner, task in zip(self.runners, tasks, strict=False)
            if task in done and isinstance(runner, _Served) and not runner.started
        ]
        for name in not_started:
            print(f"service failed to start: {name} (see its log)", file=sys.stderr, flush=True)
        if any(r.host.exit_code for r in self.runners):
            return RESTART_EXIT_CODE
        if not_started or any(auth is not None and not auth.started for _, auth in self.built):
            return STARTUP_FAILED_EXIT_CODE
        return 1 if failed or unexpected else 0


async def run_plan(plan: Plan) -> int:
    """As a process of its own: SIGTERM/SIGINT drain and stop."""
    services = Services(plan)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, services.stop)
    return await services.run()


def main() -> None:
    plan = Plan.model_validate_json(Path(sys.argv[1]).read_text())
    try:
        import uvloop

        code = uvloop.run(run_plan(plan))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        code = asyncio.run(run_plan(plan))
    sys.exit(code)


if __name__ == "__main__":
    main()
