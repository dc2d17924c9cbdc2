"""Wiring of the auth service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_auth import __version__


@asynccontextmanager
async def setup(host: ServiceHost) -> AsyncIterator[None]:
    await host.rpc.announce()
    yield


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, Starlette]:
    settings = settings or ServiceSettings(service=ServiceName.AUTH.value)
    host = ServiceHost(settings, ServiceName.AUTH, __version__)
    return host, create_app(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
