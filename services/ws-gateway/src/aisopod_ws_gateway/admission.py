"""Who may open a WebSocket: the edge proof, then the per-IP connection limit over NATS.

Traefik routes `/ws` here with no forwardAuth (launcher/traefik.py), so a handshake costs
one Traefik exchange plus NATS round trips. An upgrade without the edge proof
(aisopod/edgeproof.py) is refused with 403 before anything of it is believed; with it, the
client IP is walked from `X-Forwarded-For` and ratelimit's `ratelimit.edge` counts the
upgrade against the `/ws` route class (`ws_connect`, with its lockout). A refusal is 429
with `Retry-After`, `X-RateLimit-*` and the JSON error the forwardAuth answer carried. When
ratelimit cannot be asked the upgrade is refused with 503 (the client reconnects later).

An address the rules exempt is asked about once per configuration: ratelimit's `exempt`
answer is kept (aisopod/exemptcache.py) and the next upgrade from it is admitted without the round
trip while ws-gateway runs the config revision that answer was decided under.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

from aisopod.bus import Bus
from aisopod.contracts.ratelimit import EdgeCheckResult
from aisopod.edgeproof import REFUSAL
from aisopod.errors import AisopodError
from aisopod.exemptcache import ExemptCache
from aisopod_ws_gateway import metrics

log = logging.getLogger("aisopod.ws.admission")

LIMIT_TIMEOUT_S = 5.0
_REASONS = {403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}
UNAVAILABLE = {"type": "unavailable", "message": "rate limiting is unavailable; retry shortly"}


def _json(status: int, body: dict[str, object], extra: dict[str, str] | None = None) -> Response:
    data = orjson.dumps(body)
    headers = Headers()
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(data))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    for name, value in (extra or {}).items():
        headers[name] = value
    return Response(status, _REASONS[status], headers, data)


def unproven() -> Response:
    """403 for an upgrade that did not come through the edge."""
    error = {"type": "edge_proof_missing", "message": REFUSAL}
    return _json(403, {"ok": False, "error": error})


def _seconds(ms: int) -> int:
    return max(0, -(-ms // 1000))


def limited(result: EdgeCheckResult) -> Response:
    retry_after = max(1, _seconds(result.retry_after_ms))
    if result.reason == "lockout":
        message = f"too many attempts; locked out, retry in {retry_after} s"
    else:
        message = (
            f"rate limit exceeded: {result.limit} requests per window; retry in {retry_after} s"
        )
    headers = {
        "X-RateLimit-Limit": str(result.limit),
        "X-RateLimit-Remaining": str(result.remaining),
        "X-RateLimit-Reset": str(_seconds(result.reset_ms)),
        "Retry-After": str(retry_after),
    }
    return _json(429, {"ok": False, "error": {"type": "RATE_LIMITED", "message": message}}, headers)


class ConnectionLimit:
    """The per-IP connection limit of one gateway: ratelimit's `exempt` verdicts from the
    cache, every other upgrade asked of ratelimit (`ratelimit.edge`)."""

    __slots__ = ("bus", "cache", "revision")

    def __init__(self, bus: Bus, revision: Callable[[], int], cache: ExemptCache) -> None:
        self.bus = bus
        self.revision = revision  # the config KV revision this gateway runs now
        self.cache = cache

    def exempt(self, path: str, client_ip: str) -> bool:
        """Whether the upgrade may go on at once: ratelimit exempted this address for this
        path under the configuration this gateway runs (no NATS, no model)."""
        if self.cache.admits(self.revision(), path, client_ip):
            metrics.EXEMPT_CACHED.inc()
            return True
        return False

    async def check(self, path: str, client_ip: str) -> Response | None:
        """None when the upgrade may go on, else the refusal to send."""
        bus = self.bus
        try:
            reply = await bus.request(
                bus.subjects.ratelimit("edge"),
                {"path": path, "clientIp": client_ip},
                timeout=LIMIT_TIMEOUT_S,
                unavailable="ratelimit",
            )
            result = EdgeCheckResult.model_validate(reply)
        except AisopodError as exc:
            log.warning("ratelimit edge check failed: %s", exc.message)
            return _json(503, {"ok": False, "error": UNAVAILABLE})
        if not result.allowed:
            return limited(result)
        # The revision read after the answer: a change applied while it was asked voids it.
        self.cache.remember(self.revision(), path, client_ip, result)
        return None
