"""Services hosted in one process (combined.py: the auth+ratelimit child, and the launcher
itself under `--small`): one whose start fails ends them all with STARTUP_FAILED_EXIT_CODE,
named on stderr, and `--small` does not restart the stack for it (hosted.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from aisopod.host import STARTUP_FAILED_EXIT_CODE as HOST_STARTUP_FAILED
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod_ops.launcher.combined import (
    STARTUP_FAILED_EXIT_CODE,
    Plan,
    PlannedService,
    Services,
)
from aisopod_ops.launcher.hosted import CRASH_LOOP_S, HostedServices
from aisopod_ops.launcher.process import ChildSpec


@asynccontextmanager
async def refuse(_: ServiceHost) -> AsyncIterator[None]:
    raise RuntimeError("refused to start")
    yield


@pytest.fixture
def plan(nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    # The settings a plan leaves out come from the environment, as for a lone service.
    monkeypatch.setenv("AISOPOD_NATS_URL", nats_url)
    monkeypatch.setenv("AISOPOD_SUBJECT_PREFIX", "s" + uuid.uuid4().hex[:8])
    monkeypatch.setenv("AISOPOD_STATE_DIR", str(tmp_path))
    password = tmp_path / "nats-password"
    password.write_text("unused by a server without accounts\n")
    return Plan(
        services=[
            PlannedService(
                service=name, port=0, instance=f"{name.value}-1", nats_password_file=password
            )
            for name in (ServiceName.RUNTIME, ServiceName.RATELIMIT)
        ]
    )


def refusing_runtime(plan: Plan) -> Services:
    """The planned services, built as combined.py builds them, whose runtime's setup fails."""
    services = Services(plan)
    runtime = services.runners[0]
    assert runtime.host.name is ServiceName.RUNTIME
    runtime.server.app.setup = refuse  # type: ignore[union-attr]
    return services


async def test_a_service_whose_start_failed_ends_them_all_non_zero_and_is_named(
    plan: Plan, capsys: pytest.CaptureFixture[str]
) -> None:
    assert STARTUP_FAILED_EXIT_CODE == HOST_STARTUP_FAILED  # one code, lone or hosted
    code = await asyncio.wait_for(refusing_runtime(plan).run(), 60)
    assert code == STARTUP_FAILED_EXIT_CODE
    told = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("service failed")
    ]
    # Ratelimit was stopped because runtime failed: not named as a failure itself.
    assert told == ["service failed to start: runtime (see its log)"]


async def test_an_asgi_service_whose_start_failed_does_not_end_the_process(
    plan: Plan, capsys: pytest.CaptureFixture[str]
) -> None:
    # uvicorn (http-api's server) ends a failed start with sys.exit(3): hosted with others,
    # that must end them in order with the code, not the whole process at once.
    from aisopod.app import create_app
    from aisopod.settings import ServiceSettings
    from aisopod_ops.launcher.combined import _Served

    services = Services(Plan(services=plan.services[1:]))  # ratelimit
    settings = ServiceSettings(service=ServiceName.RUNTIME.value, instance="asgi-1")
    host = ServiceHost(settings, ServiceName.RUNTIME, "9.9.9")
    asgi = _Served(host, create_app(host, refuse))
    services.built.insert(0, (asgi, None))
    services.runners.insert(0, asgi)
    services.stoppable.insert(0, asgi)
    code = await asyncio.wait_for(services.run(), 60)
    assert code == STARTUP_FAILED_EXIT_CODE
    told = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("service failed")
    ]
    assert told == ["service failed to start: runtime (see its log)"]


async def test_small_stops_rather_than_restarts_on_a_failed_start(
    plan: Plan, tmp_path: Path
) -> None:
    async def never_ready() -> bool:
        return False

    spec = ChildSpec(
        name="services", argv=[], env={}, log_file=tmp_path / "services.log", probe=never_ready
    )
    ended: list[bool] = []
    hosted = HostedServices(spec, plan, on_exit=ended.append)
    # Past the crash-loop window, where a crash restarts the stack: a failed start must not.
    hosted.started_at = time.monotonic() - 2 * CRASH_LOOP_S
    await asyncio.wait_for(hosted._run(refusing_runtime(plan)), 60)
    assert ended == [False]
