"""The HTTP face of the services that serve HTTP (http-api): /health, /ready (and their
/healthz, /readyz aliases), /metrics beside the service's own routes; and the process runner.
Services whose only HTTP is those probes (auth, ratelimit, runtime) use the lighter
`probeserver.py` with the same answers; ws-gateway answers them on its own listener.

`create_app` builds a FastAPI app whose lifespan starts the host and then the service's own
setup; `serve` runs it under uvicorn (uvloop, httptools) with the gateway's SIGTERM
handling: readiness turns 503 first, drain hooks run, then uvicorn stops accepting and lets
in-flight requests finish within the drain timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from aisopod.host import ServiceHost, run_server
from aisopod.memory import settle_after_start
from aisopod.onewrite import OneWriteHttpToolsProtocol
from aisopod.probes import LIVENESS_PATHS, READINESS_PATHS
from aisopod.securityheaders import secured

Setup = Callable[[ServiceHost], AbstractAsyncContextManager[None]]
AppT = TypeVar("AppT", bound=Starlette)

_NO_STORE = {"Cache-Control": "no-store"}


def health_routes(host: ServiceHost) -> list[BaseRoute]:
    async def health(_: Request) -> Response:
        body = {
            "ok": True,
            "service": host.name,
            "version": host.version,
            "instance": host.instance,
        }
        return JSONResponse(body, headers=_NO_STORE)

    async def ready(_: Request) -> Response:
        reasons = host.not_ready_reasons()
        return JSONResponse(
            {"ready": not reasons, "reasons": reasons},
            status_code=503 if reasons else 200,
            headers=_NO_STORE,
        )

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return [
        *(Route(path, health, methods=["GET"]) for path in LIVENESS_PATHS),
        *(Route(path, ready, methods=["GET"]) for path in READINESS_PATHS),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def create_app(
    host: ServiceHost,
    setup: Setup | None = None,
    *,
    routes: Sequence[BaseRoute] = (),
    app_class: type[AppT] = Starlette,  # type: ignore[assignment]
    **app_kwargs: Any,
) -> AppT:
    """The service's ASGI app: shared health routes, then `routes`; the lifespan starts
    the host and then `setup(host)`.

    http-api passes `app_class=FastAPI` for its OpenAPI document; plain Starlette (FastAPI's
    core) is the default, since importing FastAPI costs ~0.6 s of CPU per process.
    """

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        async with host:
            if setup is None:
                settle_after_start()
                yield
            else:
                async with setup(host):
                    # Start-up's garbage back to the kernel (memory.py).
                    settle_after_start()
                    yield

    return app_class(routes=[*health_routes(host), *routes], lifespan=lifespan, **app_kwargs)


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_server(host: ServiceHost, app: Any, *, ws: str = "none") -> uvicorn.Server:
    """A uvicorn server for `app` on the host's address, without signal handling of its
    own (`serve`, or the one-process runner of `aisopod stack up --small`, decides)."""
    settings = host.settings
    config = uvicorn.Config(
        secured(app),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with a response's head and body in one write (aisopod.onewrite).
        http=OneWriteHttpToolsProtocol,
        ws=ws,
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        server_header=False,
        # Client IPs come from aisopod.clientip over the configured trusted proxies, never
        # from uvicorn's own X-Forwarded-For rewriting of the peer address.
        proxy_headers=False,
    )
    return QuietServer(config)


def serve(host: ServiceHost, app: Any, *, ws: str = "none") -> None:
    """Run `app` until SIGTERM/SIGINT, then drain and stop."""
    run_server(host, uvicorn_server(host, app, ws=ws))
