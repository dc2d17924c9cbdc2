"""Wiring of the auth service: settings, host, app. Behaviour lives in sibling modules."""

from __future__ import annotations

import sys

from aisopod.host import ServiceHost
from aisopod.probeserver import ProbeApp, serve
from aisopod.services import ServiceName
from aisopod_auth import __version__
from aisopod_auth.service import AuthService, AuthSettings


def build(settings: AuthSettings | None = None) -> tuple[ServiceHost, ProbeApp, AuthService]:
    """The host, its HTTP face (probes only: clients reach auth over NATS) and the service."""
    settings = settings or AuthSettings(service=ServiceName.AUTH.value)
    host = ServiceHost(settings, ServiceName.AUTH, __version__)
    service = AuthService(host, settings)
    return host, ProbeApp(host, service.run), service


def main() -> None:
    host, app, service = build()
    serve(host, app)
    if not service.started:
        sys.exit(3)  # startup refused (e.g. `none` mode on a public bind): not a clean stop
