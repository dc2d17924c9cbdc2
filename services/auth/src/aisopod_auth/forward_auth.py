"""`GET /verify`: Traefik forwardAuth for the HTTP API routes.

Traefik calls it with the client's headers (credential in `Authorization: Bearer`) and the
original request in `X-Forwarded-*`. 200 carries the principal in the identity headers,
which Traefik copies to the backend (`authResponseHeaders`) after stripping any copy the
client sent; any other status goes to the client as is: 401 with `WWW-Authenticate: Bearer`,
429 with `Retry-After`, and a JSON error in the shape of the surface (`/v1/*` OpenAI's
`{"error":{"message","type","code"}}`, elsewhere `{"ok":false,"error":{"type","message"}}`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aisopod.clientip import client_ip, is_loopback
from aisopod.config.model import GatewayConfig
from aisopod.contracts.auth import VerifyResult
from aisopod.errors import AisopodError, InternalError, RateLimited, Unauthenticated
from aisopod.launcher.traefik import IDENTITY_HEADERS
from aisopod_auth.verifier import Attempt, Verifier

log = logging.getLogger("aisopod.auth.http")

H_PRINCIPAL, H_ROLE, H_SCOPES, H_METHOD, H_DEVICE, H_IP = IDENTITY_HEADERS
_NO_STORE = {"Cache-Control": "no-store"}

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


def error_response(exc: AisopodError, *, openai: bool) -> Response:
    status = exc.http_status
    headers = dict(_NO_STORE)
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


def forward_auth_route(
    verifier: Callable[[], Verifier], config: Callable[[], GatewayConfig]
) -> Route:
    async def verify(request: Request) -> Response:
        headers = request.headers
        trusted = config().gateway.trusted_proxies
        peer = request.client.host if request.client else ""
        ip = client_ip(peer, headers.get("x-forwarded-for"), trusted)
        credential = bearer_of(headers.get("authorization"))
        attempt = Attempt(
            credential=("bearer", credential) if credential else None,
            client_ip=ip,
            origin=headers.get("origin"),
            direct_loopback=is_loopback(ip),
        )
        openai = is_openai_uri(headers.get("x-forwarded-uri", ""))
        try:
            result = await verifier().verify(attempt)
        except AisopodError as exc:
            return error_response(exc, openai=openai)
        except Exception:
            log.exception("forwardAuth verification failed")
            return error_response(InternalError(), openai=openai)
        return Response(status_code=200, headers=identity_headers(result, ip))

    return Route("/verify", verify, methods=["GET"])
