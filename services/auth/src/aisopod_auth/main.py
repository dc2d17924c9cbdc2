"""Wiring of the auth service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.host import ServiceHost
from aisopod.rawasgi import answer_first
from aisopod.services import ServiceName
from aisopod_auth import __version__
from aisopod_auth.forward_auth import VerifyEndpoint
from aisopod_auth.service import AuthService, AuthSettings


def build(settings: AuthSettings | None = None) -> tuple[ServiceHost, Any, AuthService]:
    """The host, the ASGI app (`/verify` ahead of the Starlette routes) and the service."""
    settings = settings or AuthSettings(service=ServiceName.AUTH.value)
    host = ServiceHost(settings, ServiceName.AUTH, __version__)
    service = AuthService(host, settings)
    endpoint = VerifyEndpoint(lambda: service.verifier, lambda: host.config.current)
    app: Starlette = create_app(host, service.run)
    return host, answer_first(app, "/verify", endpoint), service


def main() -> None:
    host, app, service = build()
    serve(host, app)
    if not service.started:
        sys.exit(3)  # startup refused (e.g. `none` mode on a public bind): not a clean stop
