"""Wiring of the runtime service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.catalogue import methods_for
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_runtime import __version__
from aisopod_runtime.handlers_part2 import build_part2


@asynccontextmanager
async def setup(host: ServiceHost) -> AsyncIterator[None]:
    # TEMPORARY WIRING (runtime part 2 only): part 1's main.py replaces this on merge.
    handlers = await build_part2(host)
    skip = {spec.name for spec in methods_for(ServiceName.RUNTIME)} - set(handlers)
    await host.rpc.start(handlers, skip=skip)
    yield


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, Starlette]:
    settings = settings or ServiceSettings(service=ServiceName.RUNTIME.value)
    host = ServiceHost(settings, ServiceName.RUNTIME, __version__)
    return host, create_app(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
