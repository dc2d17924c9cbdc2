"""Wiring of the ratelimit service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aisopod.app import create_app, serve
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_ratelimit import __version__, nats_api
from aisopod_ratelimit.service import RateLimitService


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, Any]:
    settings = settings or ServiceSettings(service=ServiceName.RATELIMIT.value)
    host = ServiceHost(settings, ServiceName.RATELIMIT, __version__)
    service = RateLimitService(host)

    @asynccontextmanager
    async def setup(host: ServiceHost) -> AsyncIterator[None]:
        await service.start()
        # No catalogue methods: only the raw ratelimit.* subjects.
        await host.rpc.start({}, raw=nats_api.handlers(service))
        try:
            yield
        finally:
            await service.stop()

    return host, create_app(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
