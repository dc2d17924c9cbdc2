"""Wiring of the ratelimit service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aisopod.compat.natspy import subscribe_direct
from aisopod.host import ServiceHost
from aisopod.probeserver import ProbeApp, serve
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_ratelimit import __version__, nats_api
from aisopod_ratelimit.service import RateLimitService


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, ProbeApp]:
    """The host and its HTTP face (probes only: clients reach ratelimit over NATS)."""
    settings = settings or ServiceSettings(service=ServiceName.RATELIMIT.value)
    host = ServiceHost(settings, ServiceName.RATELIMIT, __version__)
    service = RateLimitService(host)

    @asynccontextmanager
    async def setup(host: ServiceHost) -> AsyncIterator[None]:
        await service.start()
        # No catalogue methods: only the raw ratelimit.* subjects; `edge` from the reader.
        await host.rpc.start({}, raw=nats_api.handlers(service))
        edge = await subscribe_direct(
            host.bus.nc,
            host.bus.subjects.ratelimit("edge"),
            nats_api.EDGE_QUEUE,
            nats_api.EdgeResponder(service),
        )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # closing anyway
                await edge.unsubscribe()
            await service.stop()

    return host, ProbeApp(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
