"""`aisopod edge sync`: the edge sync as its own process, for compose and Kubernetes.

The local launcher runs `EdgeSync` in-process; in containers there is no launcher, and
Traefik must not get the Docker socket, so a small process does the same job:

- **compose**: it shares a volume with Traefik's file provider directory. At start it
  copies the generated static files (`routes.yml`) there, creates the TLS certificate
  (local CA, or checks the user's) and writes `tls.yml`, `cors.yml` and `redirect.yml`;
  then it follows KV `config` and the certificate files and rewrites what changed.
- **Kubernetes**: Traefik is the cluster's ingress controller and reads its routes from
  CRDs; its HTTP provider polls `GET /traefik/dynamic` here, which serves the live CORS
  middleware (`cors@http`) and the edge proof (`edge-proof@http`, from the Secret; only
  Traefik may reach this port). Nothing needs write access to the Kubernetes API.

`/health` answers while the process runs; `/ready` once the files are written and the
live configuration has been read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import Field, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aisopod.config.store import load_seed_file
from aisopod.probes import LIVENESS_PATHS, READINESS_PATHS
from aisopod.securityheaders import secured
from aisopod.settings import ServiceSettings
from aisopod_ops.launcher.edgesync import EdgeOptions, EdgeSync, nats_connector
from aisopod_ops.launcher.natsconf import EDGE_SYNC_USER

log = logging.getLogger("aisopod.edge")

_NO_STORE = {"Cache-Control": "no-store"}


class EdgeSettings(ServiceSettings):
    """Environment `AISOPOD_*` (secrets also as `*_FILE`), like every service."""

    service: str = "edge-sync"
    host: str = "0.0.0.0"
    port: int = 8000
    nats_user: str | None = EDGE_SYNC_USER
    dynamic_dir: Path = Field(Path("/dynamic"), description="Traefik's watched directory")
    static_dir: Path | None = Field(None, description="generated files copied in at start")
    tls_dir: Path = Field(Path("/tls"), description="where the local CA and its cert live")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The environment gives the raw string; `_split` reads it comma-separated.
    tls_names: list[str] = Field(
        default_factory=list, description="extra certificate names, comma-separated"
    )
    https_redirect: bool = False
    https_public_port: int = Field(443, description="the port clients reach HTTPS on")
    write_files: bool = Field(True, description="false: only serve Traefik's HTTP provider")

    @field_validator("tls_cert_file", "tls_key_file", mode="before")
    @classmethod
    def _unset(cls, value: Any) -> Any:
        return None if value == "" else value  # compose passes `${VAR:-}` as ""

    @field_validator("tls_names", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


def edge_options(settings: EdgeSettings) -> EdgeOptions:
    return EdgeOptions(
        dynamic_dir=settings.dynamic_dir,
        tls_dir=settings.tls_dir,
        tls_cert=settings.tls_cert_file,
        tls_key=settings.tls_key_file,
        tls_names=list(settings.tls_names),
        redirect_https_port=settings.https_public_port if settings.https_redirect else None,
        write_files=settings.write_files,
        edge_secret=settings.secret("edge_secret"),
    )


def copy_static(source: Path, target: Path) -> list[Path]:
    """Copy the generated static dynamic files (`*.yml`) into Traefik's directory."""
    copied = []
    for path in sorted(source.glob("*.yml")):
        destination = target / path.name
        if not destination.exists() or destination.read_bytes() != path.read_bytes():
            tmp = target / f".{path.name}.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(destination)
            copied.append(destination)
    return copied


def edge_app(sync: EdgeSync) -> Starlette:
    async def health(_: Request) -> Response:
        return JSONResponse({"ok": True, "service": "edge-sync"}, headers=_NO_STORE)

    async def ready(_: Request) -> Response:
        reasons = [] if sync.config_applied.is_set() else ["config"]
        return JSONResponse(
            {"ready": not reasons, "reasons": reasons},
            status_code=503 if reasons else 200,
            headers=_NO_STORE,
        )

    async def dynamic(_: Request) -> Response:
        # Traefik's HTTP provider: the live CORS middleware, referenced as `cors@http`,
        # and the edge proof, `edge-proof@http`.
        document = sync.cors_document()
        proof = sync.edge_proof_document()
        if proof:
            document["http"]["middlewares"].update(proof["http"]["middlewares"])
        return JSONResponse(document, headers=_NO_STORE)

    return Starlette(
        routes=[
            *(Route(path, health, methods=["GET"]) for path in LIVENESS_PATHS),
            *(Route(path, ready, methods=["GET"]) for path in READINESS_PATHS),
            Route("/traefik/dynamic", dynamic, methods=["GET"]),
        ]
    )


async def run_edge_sync(settings: EdgeSettings) -> None:
    sync = EdgeSync(edge_options(settings))
    if settings.write_files and settings.static_dir is not None:
        settings.dynamic_dir.mkdir(parents=True, exist_ok=True)
        for path in copy_static(settings.static_dir, settings.dynamic_dir):
            log.info("copied %s", path)
    sync.prepare(load_seed_file(settings.config_file))
    connect = nats_connector(
        settings.nats_url, settings.nats_user, settings.secret("nats_password")
    )
    follower = asyncio.create_task(sync.run(connect, settings.subject_prefix), name="edge-sync")
    config = uvicorn.Config(
        secured(edge_app(sync)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        follower.cancel()
        await asyncio.wait({follower}, timeout=2.0)


class _Server(uvicorn.Server):
    """uvicorn without its signal handling, which re-raises SIGTERM after serving and so
    would kill the process before the NATS connection is closed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
