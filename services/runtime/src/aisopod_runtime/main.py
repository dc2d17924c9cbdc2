"""Wiring of the runtime service: settings, host, app. Behaviour lives in sibling modules.

The runtime's methods come in two parts: `handlers_part1` (providers, agents, chat,
sessions, tools, approvals) and `handlers_part2` (config, cron, skills, status, logs,
updates, plugins, wizard). `RpcServer.start` refuses to start unless together they serve
exactly the runtime's catalogue methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.host import ServiceHost
from aisopod.rpc import Handler
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_runtime import __version__
from aisopod_runtime.handlers_part1 import build_part1
from aisopod_runtime.handlers_part2 import build_part2


async def build_handlers(host: ServiceHost) -> dict[str, Handler]:
    part1 = await build_part1(host)
    part2 = await build_part2(host)
    overlap = sorted(set(part1) & set(part2))
    if overlap:
        raise RuntimeError(f"methods served twice: {overlap}")
    return part1 | part2


@asynccontextmanager
async def setup(host: ServiceHost) -> AsyncIterator[None]:
    await host.rpc.start(await build_handlers(host))
    yield


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, Starlette]:
    settings = settings or ServiceSettings(service=ServiceName.RUNTIME.value)
    host = ServiceHost(settings, ServiceName.RUNTIME, __version__)
    return host, create_app(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
