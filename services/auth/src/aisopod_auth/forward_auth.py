"""`GET /verify`: Traefik forwardAuth for the HTTP API routes.

Traefik calls it with the client's headers (credential in `Authorization: Bearer`) and the
original request in `X-Forwarded-*`. 200 carries the principal in the identity headers,
which Traefik copies to the backend (`authResponseHeaders`) after stripping any copy the
client sent; any other status goes to the client as is: 401 with `WWW-Authenticate: Bearer`,
429 with `Retry-After`, and a JSON error in the shape of the surface (`/v1/*` OpenAI's
`{"error":{"message","type","code"}}`, elsewhere `{"ok":false,"error":{"type","message"}}`).

It is answered as a bare ASGI app ahead of Starlette's routing (`mount`), like ratelimit's
`/check`: every proxied API request passes here, and the router, middleware stack, Request
and Response objects were most of this endpoint's own cost (the verification itself is a
digest and a dictionary look-up for the admin token). Errors still go through
`error_response` (rare, and their shape matters more than their speed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from starlette.responses import JSONResponse, Response

from aisopod.clientip import client_ip, is_loopback
from aisopod.config.model import GatewayConfig
from aisopod.contracts.auth import VerifyResult
from aisopod.errors import AisopodError, InternalError, RateLimited, Unauthenticated
from aisopod.principal import IDENTITY_HEADERS
from aisopod.rawasgi import respond
from aisopod.requestid import request_id
from aisopod_auth.verifier import Attempt, Verifier

log = logging.getLogger("aisopod.auth.http")

H_PRINCIPAL, H_ROLE, H_SCOPES, H_METHOD, H_DEVICE, H_IP = IDENTITY_HEADERS
_NO_STORE = {"Cache-Control": "no-store"}
_RAW = {name: name.lower().encode("latin-1") for name in IDENTITY_HEADERS}
_RAW_OK_TAIL = ((b"cache-control", b"no-store"), (b"content-length", b"0"))

Scope = dict[str, Any]

# Traefik calls with the same few X-Forwarded-For chains again and again: parsing them is
# a visible share of this endpoint's cost, so remember the answer (bounded; a flood of new
# clients just misses). The trusted list is part of the key, so a config change applies.
_client_ip = lru_cache(maxsize=16384)(client_ip)
_is_loopback = lru_cache(maxsize=16384)(is_loopback)

# OpenAI's (type, code) per HTTP status, for `/v1/*` clients (their SDKs read these).
_OPENAI_KIND: dict[int, tuple[str, str]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def bearer_of(header: str | None) -> str | None:
    """The credential of `Authorization: Bearer <credential>`, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def is_openai_uri(uri: str) -> bool:
    path = uri.split("?", 1)[0]
    return path == "/v1" or path.startswith("/v1/")


def identity_headers(result: VerifyResult, ip: str) -> dict[str, str]:
    principal = result.principal
    headers = {
        H_PRINCIPAL: principal.id,
        H_ROLE: principal.role,
        H_SCOPES: ",".join(principal.scopes),
        H_METHOD: principal.auth_method,
        H_IP: ip,
        **_NO_STORE,
    }
    if principal.device_id:
        headers[H_DEVICE] = principal.device_id
    return headers


def error_response(exc: AisopodError, *, openai: bool, request_id: str | None = None) -> Response:
    status = exc.http_status
    headers = dict(_NO_STORE)
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="aisopod"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_ms / 1000)))
    if openai:
        kind, code = _OPENAI_KIND.get(status, ("server_error", "internal_error"))
        body: dict[str, object] = {"error": {"message": exc.message, "type": kind, "code": code}}
    else:
        body = {
            "ok": False,
            "error": {"type": exc.name.lower(), "message": exc.message, "code": exc.detail_code},
        }
    return JSONResponse(body, status_code=status, headers=headers)


class VerifyEndpoint:
    """`GET /verify` as a bare ASGI app (see the module docstring)."""

    def __init__(
        self, verifier: Callable[[], Verifier], config: Callable[[], GatewayConfig]
    ) -> None:
        self.verifier = verifier
        self.config = config

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, [(b"allow", b"GET, HEAD")], b"Method Not Allowed")
            return
        authorization = forwarded_for = origin = None
        uri = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"x-forwarded-uri":
                uri = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        trusted = tuple(self.config().gateway.trusted_proxies)
        peer = scope["client"][0] if scope.get("client") else ""
        ip = _client_ip(peer, forwarded_for, trusted)
        credential = bearer_of(authorization)
        attempt = Attempt(
            credential=("bearer", credential) if credential else None,
            client_ip=ip,
            origin=origin,
            direct_loopback=_is_loopback(ip),
        )
        try:
            result = await self.verifier().verify(attempt)
        except AisopodError as exc:
            rid = request_id(scope["headers"]).decode()
            await error_response(exc, openai=is_openai_uri(uri), request_id=rid)(
                scope, receive, send
            )
            return
        except Exception:
            log.exception("forwardAuth verification failed")
            rid = request_id(scope["headers"]).decode()
            failure = error_response(InternalError(), openai=is_openai_uri(uri), request_id=rid)
            await failure(scope, receive, send)
            return
        await respond(send, 200, _raw_identity(result, ip))


def _raw_identity(result: VerifyResult, ip: str) -> list[tuple[bytes, bytes]]:
    """`identity_headers` as raw ASGI headers."""
    principal = result.principal
    headers = [
        (_RAW[H_PRINCIPAL], principal.id.encode()),
        (_RAW[H_ROLE], principal.role.encode()),
        (_RAW[H_SCOPES], ",".join(principal.scopes).encode()),
        (_RAW[H_METHOD], principal.auth_method.encode()),
        (_RAW[H_IP], ip.encode()),
    ]
    if principal.device_id:
        headers.append((_RAW[H_DEVICE], principal.device_id.encode()))
    headers.extend(_RAW_OK_TAIL)
    return headers
