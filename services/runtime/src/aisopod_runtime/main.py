"""Wiring of the runtime service: settings, host, app. Behaviour lives in sibling modules.

The runtime's methods come in two parts built side by side (`handlers_part1`,
`handlers_part2`); whichever exists is started, and any owned method neither part serves
yet is skipped, so each part can be merged on its own. With both, nothing is skipped.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.catalogue import methods_for
from aisopod.host import ServiceHost
from aisopod.rpc import Handler
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_runtime import __version__
from aisopod_runtime.handlers_part1 import build_part1

log = logging.getLogger("aisopod.runtime")


async def build_handlers(host: ServiceHost) -> dict[str, Handler]:
    handlers = await build_part1(host)
    try:
        part2 = importlib.import_module("aisopod_runtime.handlers_part2")
    except ModuleNotFoundError as exc:
        if exc.name != "aisopod_runtime.handlers_part2":
            raise  # part 2 exists but something it imports does not: a real error
    else:
        handlers |= await part2.build_part2(host)
    return handlers


def unserved(handlers: dict[str, Handler]) -> list[str]:
    """Owned methods no part implements yet (skipped until their part is merged)."""
    return sorted(s.name for s in methods_for(ServiceName.RUNTIME) if s.name not in handlers)


@asynccontextmanager
async def setup(host: ServiceHost) -> AsyncIterator[None]:
    handlers = await build_handlers(host)
    skip = unserved(handlers)
    if skip:
        log.warning("runtime methods not served yet: %s", ", ".join(skip))
    await host.rpc.start(handlers, skip=skip)
    yield


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, Starlette]:
    settings = settings or ServiceSettings(service=ServiceName.RUNTIME.value)
    host = ServiceHost(settings, ServiceName.RUNTIME, __version__)
    return host, create_app(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
