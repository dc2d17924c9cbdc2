"""The HTTP face every service shares: /health, /ready, /metrics; and the process runner.

`create_app` builds a FastAPI app whose lifespan starts the host and then the service's own
setup; `serve` runs it under uvicorn (uvloop, httptools) with the gateway's SIGTERM
handling: readiness turns 503 first, drain hooks run, then uvicorn stops accepting and lets
in-flight requests finish within the drain timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aisopod.host import ServiceHost

Setup = Callable[[ServiceHost], AbstractAsyncContextManager[None]]


def health_router(host: ServiceHost) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    no_store = {"Cache-Control": "no-store"}

    @router.get("/health")
    async def health() -> Response:
        return JSONResponse(
            {"ok": True, "service": host.name, "version": host.version, "instance": host.instance},
            headers=no_store,
        )

    @router.get("/ready")
    async def ready() -> Response:
        reasons = host.not_ready_reasons()
        return JSONResponse(
            {"ready": not reasons, "reasons": reasons},
            status_code=503 if reasons else 200,
            headers=no_store,
        )

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(host: ServiceHost, setup: Setup | None = None, **fastapi_kwargs: Any) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with host:
            if setup is None:
                yield
            else:
                async with setup(host):
                    yield

    app = FastAPI(
        title=f"aisopod {host.name}", version=host.version, lifespan=lifespan, **fastapi_kwargs
    )
    app.include_router(health_router(host))
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(host: ServiceHost, app: Any, *, ws: str = "none") -> None:
    """Run `app` until SIGTERM/SIGINT, then drain and stop."""
    settings = host.settings
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws=ws,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        server_header=False,
    )
    server = _Server(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []

        async def stop() -> None:
            await host.drain()
            server.should_exit = True

        def on_signal() -> None:
            if stopping:
                server.force_exit = True  # a second signal: stop now
                return
            stopping.append(loop.create_task(stop()))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await server.serve()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main())
