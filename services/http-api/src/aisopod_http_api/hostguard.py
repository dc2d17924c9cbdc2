"""DNS rebinding in `auth.mode: none`: a request for a host name nobody configured is 403.

In `none` every client on this machine is the operator, so a page on `evil.example` whose
name the attacker re-points at the gateway would be same-origin with it and could call
`/tools/invoke` or `/v1` freely; its requests say `Host: evil.example:<port>`. The other
modes need a credential the page does not have, so they are not checked (it costs the
fast path nothing there). Which names are ours: aisopod.hostnames.
"""

from __future__ import annotations

from starlette.types import Scope

from aisopod.errors import AisopodError, Forbidden
from aisopod.hostnames import host_of_header, is_configured_host, own_host_names
from aisopod_http_api.service import HttpApi


class RebindGuard:
    """`refusal(scope)`: the error to answer instead of serving, or None (EdgeMiddleware
    asks it first, before the fast path and the app)."""

    def __init__(self, api: HttpApi) -> None:
        self.api = api
        settings = api.host.settings
        self._own = own_host_names(settings.public_url, settings.host)

    def refusal(self, scope: Scope) -> AisopodError | None:
        if not self._refused(scope):
            return None
        return Forbidden(
            "this host name is not the gateway's (auth mode none)", code="HOST_NOT_ALLOWED"
        )

    def _refused(self, scope: Scope) -> bool:
        try:
            config = self.api.config
        except RuntimeError:  # not loaded yet: nothing but probes is served
            return False
        if config.auth.mode != "none":
            return False
        host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        name = host_of_header(host) if host else None
        if not name:
            return True
        own = self._own | own_host_names(None, None, config.cors.allowed_origins)
        return not is_configured_host(name, own)
