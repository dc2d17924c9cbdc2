"""Wiring of the auth service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

import sys

from starlette.applications import Starlette

from aisopod.app import create_app, serve
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod_auth import __version__
from aisopod_auth.forward_auth import forward_auth_route
from aisopod_auth.service import AuthService, AuthSettings


def build(settings: AuthSettings | None = None) -> tuple[ServiceHost, Starlette]:
    settings = settings or AuthSettings(service=ServiceName.AUTH.value)
    host = ServiceHost(settings, ServiceName.AUTH, __version__)
    service = AuthService(host, settings)
    route = forward_auth_route(lambda: service.verifier, lambda: host.config.current)
    app = create_app(host, service.run, routes=[route])
    app.state.auth_service = service
    return host, app


def main() -> None:
    host, app = build()
    serve(host, app)
    if not app.state.auth_service.started:
        sys.exit(3)  # startup refused (e.g. `none` mode on a public bind): not a clean stop
