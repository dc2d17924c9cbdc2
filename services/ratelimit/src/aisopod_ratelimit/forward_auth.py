"""`GET /check`: Traefik's forwardAuth call, answered as a bare ASGI app.

Traefik's forwardAuth describes the original request in `X-Forwarded-Method/-Uri/-For`.
The path picks the route class and so the rule; the client IP comes from X-Forwarded-For
over `gateway.trustedProxies`. A CORS preflight (OPTIONS with
Access-Control-Request-Method) is never counted. Admitted: 200 with `X-RateLimit-Limit`,
`-Remaining` and `-Reset` (whole seconds until a slot frees), which Traefik passes to the
backend. Refused: 429 with `Retry-After` (whole seconds, at least 1), the same headers and
the surface's error body, which Traefik returns to the client as is.

Bare ASGI rather than a Starlette route: this is the hot path of every proxied request,
and skipping the router and middleware stack is most of what it costs here.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from aisopod import codec
from aisopod.clientip import client_ip
from aisopod.rawasgi import respond
from aisopod.requestid import HEADER, request_id
from aisopod_ratelimit.limiter import Decision
from aisopod_ratelimit.service import RateLimitService

log = logging.getLogger("aisopod.ratelimit.http")

Scope = dict[str, Any]

_NO_STORE = (b"cache-control", b"no-store")
_JSON = (b"content-type", b"application/json")


# The same clients call again and again: parsing their chain of addresses is most of
# this endpoint's own cost, so remember it (bounded: a flood of new clients just misses).
_client_ip = lru_cache(maxsize=16384)(client_ip)


def _seconds(ms: int) -> int:
    return max(0, -(-ms // 1000))


def error_body(path: str, decision: Decision, retry_after_s: int) -> bytes:
    """429 body in the shape of the surface the client called (docs/protocol/http.md)."""
    if decision.reason == "lockout":
        message = f"too many attempts; locked out, retry in {retry_after_s} s"
    elif decision.reason == "unreachable":
        message = "rate limiting is unavailable; retry shortly"
    else:
        message = (
            f"rate limit exceeded: {decision.limit} requests per window; retry in {retry_after_s} s"
        )
    if path == "/v1" or path.startswith("/v1/"):
        body: dict[str, Any] = {
            "error": {"message": message, "type": "rate_limit_error", "code": "rate_limit_exceeded"}
        }
    else:
        body = {"ok": False, "error": {"type": "RATE_LIMITED", "message": message}}
    return codec.dumps(body)


class CheckEndpoint:
    def __init__(self, service: RateLimitService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        method = uri = forwarded_for = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"x-forwarded-uri":
                uri = value.decode("latin-1")
            elif name == b"x-forwarded-method":
                method = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"access-control-request-method":
                preflight = True
        if preflight and method == "OPTIONS":
            await respond(send, 200, [])
            return
        service = self.service
        ruleset = service.ruleset
        path = (uri or "/").partition("?")[0]
        route = ruleset.route(path)
        if route is None:
            await respond(send, 200, [])
            return
        peer = scope["client"][0] if scope.get("client") else ""
        address = _client_ip(peer, forwarded_for, service.trusted_proxies)
        try:
            key = ruleset.edge_key(route, address)
            decision = await service.decide("check", route.rule, key, normalised=True)
        except Exception:
            log.exception("forwardAuth decision failed")
            await respond(
                send,
                500,
                [_JSON, (HEADER, request_id(scope["headers"]))],
                b'{"ok":false,"error":{"type":"INTERNAL_ERROR","message":"internal error"}}',
            )
            return
        headers = [
            (b"x-ratelimit-limit", str(decision.limit).encode()),
            (b"x-ratelimit-remaining", str(decision.remaining).encode()),
            (b"x-ratelimit-reset", str(_seconds(decision.reset_ms)).encode()),
        ]
        if decision.allowed:
            await respond(send, 200, headers)
            return
        retry_after = max(1, _seconds(decision.retry_after_ms))
        headers += [(b"retry-after", str(retry_after).encode()), _JSON, _NO_STORE]
        headers.append((HEADER, request_id(scope["headers"])))
        await respond(send, 429, headers, error_body(path, decision, retry_after))
