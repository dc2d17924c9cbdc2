"""Wiring of the http-api service: settings, host, the FastAPI app, the edge layer."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import Field
from starlette.routing import Route
from starlette.types import ASGIApp

from aisopod.app import create_app, serve
from aisopod.edgeproof import EdgeProof
from aisopod.exemptcache import DEFAULT_MAX_AGE_S, ExemptCache
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_http_api import __version__, errors, openapi
from aisopod_http_api.edge import BodyLimits, EdgeMiddleware
from aisopod_http_api.gate import Gate
from aisopod_http_api.hostguard import RebindGuard
from aisopod_http_api.routes import a2ui, canvas, hooks, models, responses, status, tools
from aisopod_http_api.routes.completions import ChatCompletionsEndpoint
from aisopod_http_api.service import HttpApi


class HttpApiSettings(ServiceSettings):
    """`AISOPOD_EXEMPT_CACHE_MAX_AGE_S`: how long ratelimit's `exempt` verdict for an
    address is reused by the gate (gate.py, aisopod/exemptcache.py); 0 turns it off (every
    API request asks ratelimit)."""

    exempt_cache_max_age_s: float = Field(DEFAULT_MAX_AGE_S, ge=0.0, le=3600.0)


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, ASGIApp]:
    settings = settings or HttpApiSettings(service=ServiceName.HTTP_API.value)
    host = ServiceHost(settings, ServiceName.HTTP_API, __version__)
    api = HttpApi(host)
    max_age_s = (
        settings.exempt_cache_max_age_s
        if isinstance(settings, HttpApiSettings)
        else DEFAULT_MAX_AGE_S
    )
    gate = Gate(
        lambda: host.bus,
        ipv6_prefix=lambda: api.config.limits.ipv6_prefix,
        snapshot=lambda: host.config.snapshot,
        exempt=ExemptCache(max_age_s=max_age_s),
    )

    @asynccontextmanager
    async def setup(host: ServiceHost) -> AsyncIterator[None]:
        await host.rpc.announce()
        await api.start()
        await gate.start(host.bus)
        host.config.on_change(gate.on_config)
        # Everything built so far lives as long as the process: keep it out of the
        # collector's full passes (they showed up at ~4 % of the fast path's CPU).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await gate.stop()
            await api.stop()

    completions = ChatCompletionsEndpoint(api)
    app = create_app(
        host,
        setup,
        # Served by the edge directly (below); the route answers other methods with 405.
        routes=[Route("/v1/chat/completions", completions, methods=["POST"])],
        app_class=FastAPI,
        # FastAPI's built-in OpenTelemetry checks its providers on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="aisopod gateway HTTP API",
        version=__version__,
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = api
    for module in (models, responses, status, tools, hooks, canvas, a2ui):
        app.include_router(module.router)
    errors.install(app)
    openapi.install(app)
    limits = BodyLimits(lambda: api.config.hooks.max_body_bytes)
    fast = {("POST", "/v1/chat/completions"): completions}
    edge = EdgeMiddleware(
        app,
        limits,
        proof=EdgeProof(settings.secret("edge_secret")),
        gate=gate,
        trusted_proxies=lambda: tuple(api.config.gateway.trusted_proxies),
        fast=fast,
        refuse=RebindGuard(api).refusal,
        wrote=api.edge_reads.wrote,
    )
    return host, edge


def main() -> None:
    host, app = build()
    serve(host, app)
