"""Who may call, and how often: http-api asks auth and ratelimit itself, over NATS.

Traefik routes the API here with no forwardAuth (launcher/traefik.py): one proxied exchange
per request instead of three. For every request but the probes, the edge layer (edge.py)
first checks the edge proof (aisopod/edgeproof.py) and only then reads the client IP from
`X-Forwarded-For`; then `Gate.admit` sends, in parallel:

- `ratelimit.edge` `{path, clientIp}`: the route class's per-IP limit (every path);
- `auth.verify` with the bearer credential (every path but `/hooks`, which has its own
  token and lockout), unless a verification of the same credential is cached.

A refusal is answered exactly as the forwardAuth endpoints answered it before (same
status, headers and body per surface): ratelimit's 429 first (it ran first then), then
auth's 401/403/429. `/hooks` was never behind auth; it still is not.

The cache: verified principals by the SHA-256 of (credential, Origin, loopback), for
`TOKEN_CACHE_TTL_S`, at most `TOKEN_CACHE_SIZE` entries. Only successes are cached, so a
wrong guess always reaches auth (and its lockout); and a client IP that auth has locked
out (its broadcast `control.auth.lockout`, heard here too) skips the cache, so auth
answers it 429 as before, even with a valid credential. It is emptied whenever a credential may
have stopped being valid: auth's closing order (`control.connections.close`, published on
token revoke or rotation, device or node removal), auth's `control.auth.changed` (a pairing
decision, an auth process starting or stopping) and any change of the config's `auth`
section (mode, token, password). The TTL bounds what a lost order could cost.

Exempt addresses: ratelimit's `exempt` verdict is kept (aisopod/exemptcache.py) by the
route class the path falls in (aisopod/routeclass.py, the matcher ratelimit picks the rule
with) and the client IP, and the next request from that address in that class skips
`ratelimit.edge` while http-api runs the config revision ratelimit decided under (its
reply's `configRevision`). Only the edge rule's `exempt` is kept: auth's lockouts are
auth's (`auth.verify`, the lockout broadcast), asked or honoured exactly as before. No
revocation order rested on the ratelimit round trip: a cached principal is read before
that request is sent (docs/http-api.md, "Exempt addresses").
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from prometheus_client import Counter

from aisopod.bus import Bus
from aisopod.clientip import is_loopback, lockout_key
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigSnapshot
from aisopod.contracts.auth import VerifiedPrincipal, VerifyRequest, VerifyResult
from aisopod.contracts.ratelimit import EdgeCheckResult
from aisopod.errors import (
    AisopodError,
    InternalError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from aisopod.exemptcache import ExemptCache
from aisopod.routeclass import RouteClasses
from aisopod.scopes import Role
from aisopod_http_api.identity import Caller

log = logging.getLogger("aisopod.http_api.gate")

TOKEN_CACHE_TTL_S = 10.0
TOKEN_CACHE_SIZE = 4096
LOCKS_TRACKED = 100_000
NATS_TIMEOUT_S = 5.0
UNGUARDED_BY_AUTH = ("/hooks",)

EXEMPT_CACHED = Counter(
    "aisopod_http_exempt_cached",
    "API requests admitted from a kept exempt verdict, not asked of ratelimit (so not in "
    "its decision counters)",
)

_ROLES = {role.value: role for role in Role}
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
# OpenAI's (type, code) per status for `/v1/*` clients, as auth's forwardAuth answered.
_OPENAI_KIND: dict[int, tuple[str, str]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


@dataclass(slots=True)
class Refusal:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def is_openai_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def bearer_of(header: str | None) -> str | None:
    """The credential of `Authorization: Bearer <credential>`, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def auth_refusal(exc: AisopodError, path: str) -> Refusal:
    """auth's refusal in the shape of the surface (401 `WWW-Authenticate`, 429
    `Retry-After`)."""
    status = exc.http_status
    headers = [_JSON, _NO_STORE]
    if isinstance(exc, Unauthenticated):
        headers.append((b"www-authenticate", b'Bearer realm="aisopod"'))
    if isinstance(exc, RateLimited) or status == 429:
        seconds = max(1, math.ceil(int(exc.data.get("retryAfterMs", 1000)) / 1000))
        headers.append((b"retry-after", str(seconds).encode()))
    if is_openai_path(path):
        kind, code = _OPENAI_KIND.get(status, ("server_error", "internal_error"))
        body: dict[str, Any] = {"error": {"message": exc.message, "type": kind, "code": code}}
    else:
        body = {
            "ok": False,
            "error": {"type": exc.name.lower(), "message": exc.message, "code": exc.detail_code},
        }
    return Refusal(status, headers, orjson.dumps(body))


def _seconds(ms: int) -> int:
    return max(0, -(-ms // 1000))


def rate_headers(result: EdgeCheckResult) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(result.limit).encode()),
        (b"x-ratelimit-remaining", str(result.remaining).encode()),
        (b"x-ratelimit-reset", str(_seconds(result.reset_ms)).encode()),
    ]


def rate_refusal(result: EdgeCheckResult, path: str) -> Refusal:
    """ratelimit's 429: `Retry-After`, `X-RateLimit-*` and the surface's error body."""
    retry_after = max(1, _seconds(result.retry_after_ms))
    if result.reason == "lockout":
        message = f"too many attempts; locked out, retry in {retry_after} s"
    elif result.reason == "unreachable":
        message = "rate limiting is unavailable; retry shortly"
    else:
        message = (
            f"rate limit exceeded: {result.limit} requests per window; retry in {retry_after} s"
        )
    if is_openai_path(path):
        body: dict[str, Any] = {
            "error": {"message": message, "type": "rate_limit_error", "code": "rate_limit_exceeded"}
        }
    else:
        body = {"ok": False, "error": {"type": "RATE_LIMITED", "message": message}}
    headers = [
        *rate_headers(result),
        (b"retry-after", str(retry_after).encode()),
        _JSON,
        _NO_STORE,
    ]
    return Refusal(429, headers, orjson.dumps(body))


class TokenCache:
    """Verified principals by credential digest, for a short TTL (see the module doc)."""

    def __init__(
        self,
        ttl_s: float = TOKEN_CACHE_TTL_S,
        size: int = TOKEN_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[float, VerifiedPrincipal]] = OrderedDict()

    @staticmethod
    def key(credential: str, origin: str | None, direct_loopback: bool) -> bytes:
        material = f"{credential}\0{origin or ''}\0{int(direct_loopback)}"
        return hashlib.sha256(material.encode()).digest()

    def get(self, key: bytes) -> VerifiedPrincipal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, principal = entry
        if expires <= self.clock():
            del self._entries[key]
            return None
        return principal

    def put(self, key: bytes, principal: VerifiedPrincipal) -> None:
        self._entries[key] = (self.clock() + self.ttl_s, principal)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def abandon(task: asyncio.Future[Any] | None) -> None:
    """Stop waiting for `task`; an answer it already had (an error) is read, not logged as
    never retrieved. (auth may still have counted a wrong guess it was sent: the two
    checks run at once, so a rate-limited guess is not free either.)"""
    if task is None:
        return
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def caller_of(principal: VerifiedPrincipal, client_ip: str, trace_id: str | None) -> Caller:
    return Caller(
        id=principal.id,
        role=_ROLES.get(principal.role, Role.OPERATOR),
        scopes=tuple(principal.scopes),
        auth_method=principal.auth_method,
        device_id=principal.device_id,
        client_ip=client_ip,
        trace_id=trace_id,
    )


class Gate:
    def __init__(
        self,
        bus: Callable[[], Bus],
        cache: TokenCache | None = None,
        ipv6_prefix: Callable[[], int] = lambda: 64,
        snapshot: Callable[[], ConfigSnapshot] | None = None,
        exempt: ExemptCache | None = None,
    ) -> None:
        """`snapshot`: the config this process runs now (its KV revision and routes);
        without it no exempt verdict is kept (`exempt` is then unused)."""
        self._bus = bus
        # `is None`, not `or`: an empty cache has length 0, so it is falsy.
        self.cache = TokenCache() if cache is None else cache
        self._ipv6_prefix = ipv6_prefix
        self._locked_until_ms: dict[str, int] = {}
        self._snapshot = snapshot
        self.exempt = ExemptCache() if exempt is None else exempt
        # The route classes of the revision last seen, built once per revision.
        self._classes: tuple[int, RouteClasses] = (-1, RouteClasses(()))

    # -- invalidation ---------------------------------------------------------------------
    async def start(self, bus: Bus) -> None:
        async def on_close_order(_msg: Any) -> None:
            self.cache.clear()

        async def on_lockout(msg: Any) -> None:
            try:
                body = orjson.loads(msg.data)
                key, until_ms = str(body["key"]), int(body["untilMs"])
            except (ValueError, KeyError, TypeError):
                log.warning("malformed auth.lockout broadcast")
                return
            self.lock(key, until_ms)

        self._subs = [
            await bus.nc.subscribe(bus.subjects.control("connections.close"), cb=on_close_order),
            # auth's "verified credentials may be stale" (a pairing decision, its start).
            await bus.nc.subscribe(bus.subjects.control("auth.changed"), cb=on_close_order),
            await bus.nc.subscribe(bus.subjects.control("auth.lockout"), cb=on_lockout),
        ]

    def lock(self, key: str, until_ms: int) -> None:
        now = int(time.time() * 1000)
        if len(self._locked_until_ms) >= LOCKS_TRACKED:
            self._locked_until_ms = {k: v for k, v in self._locked_until_ms.items() if v > now}
        if until_ms > self._locked_until_ms.get(key, 0):
            self._locked_until_ms[key] = until_ms

    def locked(self, client_ip: str) -> bool:
        until = self._locked_until_ms.get(lockout_key(client_ip, self._ipv6_prefix()))
        return until is not None and until > time.time() * 1000

    def on_config(self, new: GatewayConfig, old: GatewayConfig) -> None:
        if new.auth != old.auth:
            self.cache.clear()
        self.exempt.clear()  # a new revision voids them anyway; this is at once

    def route_class(self, snapshot: ConfigSnapshot, path: str) -> int | None:
        """The position of the route class `path` falls in under `snapshot`."""
        revision, classes = self._classes
        if revision != snapshot.revision:
            classes = RouteClasses.from_section(snapshot.config.limits)
            self._classes = (snapshot.revision, classes)
        return classes.index(path)

    async def stop(self) -> None:
        for sub in getattr(self, "_subs", ()):
            await sub.unsubscribe()

    # -- the decision ---------------------------------------------------------------------
    def admit_kept(
        self,
        path: str,
        client_ip: str,
        authorization: str | None,
        origin: str | None,
        trace_id: str | None,
    ) -> Caller | Literal[False] | None:
        """The decision `admit` would reach without asking anyone, or False (ask): the
        credential's verification is cached (and the address not locked out) and the
        address's exempt verdict is kept for the path's route class. Then the caller (None
        on `/hooks`, which auth does not guard). A refusal always needs an answer over
        NATS, so none is given here. Synchronous, so a request with a body waits for no
        task of its own while the body is read."""
        principal: VerifiedPrincipal | None = None
        if not path.startswith(UNGUARDED_BY_AUTH):
            bearer = bearer_of(authorization)
            if bearer is None or self.locked(client_ip):
                return False
            principal = self.cache.get(TokenCache.key(bearer, origin, is_loopback(client_ip)))
            if principal is None:
                return False
        if not self._exempt_kept(path, client_ip):
            return False
        EXEMPT_CACHED.inc()
        return caller_of(principal, client_ip, trace_id) if principal is not None else None

    def _exempt_kept(self, path: str, client_ip: str) -> bool:
        if self._snapshot is None or self.exempt.max_age_s <= 0:  # the cache is off
            return False
        snapshot = self._snapshot()
        route_class = self.route_class(snapshot, path)
        return route_class is not None and self.exempt.admits(
            snapshot.revision, route_class, client_ip
        )

    async def admit(
        self,
        path: str,
        client_ip: str,
        authorization: str | None,
        origin: str | None,
        trace_id: str | None,
    ) -> tuple[Caller | None, Refusal | None]:
        """(the caller, None) when admitted (no caller on `/hooks`), else (None, refusal)."""
        needs_auth = not path.startswith(UNGUARDED_BY_AUTH)
        bearer = bearer_of(authorization)
        direct_loopback = is_loopback(client_ip)
        principal: VerifiedPrincipal | None = None
        key: bytes | None = None
        verify: asyncio.Task[VerifyResult] | None = None
        if needs_auth:
            if bearer is not None:
                key = TokenCache.key(bearer, origin, direct_loopback)
                if not self.locked(client_ip):
                    principal = self.cache.get(key)
            if principal is None:
                request = VerifyRequest(
                    bearer=bearer,
                    client_ip=client_ip,
                    origin=origin,
                    direct_loopback=direct_loopback,
                )
                verify = asyncio.ensure_future(self._verify(request))
        # The edge rule: a kept exemption, else ratelimit (which may give one to keep).
        snapshot: ConfigSnapshot | None = None
        if self._snapshot is not None and self.exempt.max_age_s > 0:  # else the cache is off
            snapshot = self._snapshot()
        route_class = self.route_class(snapshot, path) if snapshot is not None else None
        if (
            snapshot is not None
            and route_class is not None
            and self.exempt.admits(snapshot.revision, route_class, client_ip)
        ):
            EXEMPT_CACHED.inc()
        else:
            try:
                limited = await self._limit(path, client_ip)
            except AisopodError as exc:
                abandon(verify)
                log.warning("ratelimit edge check failed: %s", exc.message)
                return None, auth_refusal(
                    Unavailable("rate limiting is unavailable; retry shortly"), path
                )
            except BaseException:
                abandon(verify)
                raise
            if not limited.allowed:
                abandon(verify)
                return None, rate_refusal(limited, path)
            if snapshot is not None and route_class is not None and limited.reason == "exempt":
                self._keep(snapshot, route_class, client_ip, limited)
        if not needs_auth:
            return None, None
        if verify is not None:
            try:
                result = await verify
            except AisopodError as exc:
                return None, auth_refusal(exc, path)
            except Exception:
                log.exception("auth verification failed")
                return None, auth_refusal(InternalError(), path)
            principal = result.principal
            if key is not None:
                self.cache.put(key, principal)
        assert principal is not None
        return caller_of(principal, client_ip, trace_id), None

    def _keep(
        self, asked_under: ConfigSnapshot, route_class: int, client_ip: str, result: EdgeCheckResult
    ) -> None:
        """Keep an exemption when no change was applied while it was asked: the class was
        found under `asked_under`, and the cache checks the reply was decided under it."""
        assert self._snapshot is not None
        revision = self._snapshot().revision
        if revision == asked_under.revision:
            self.exempt.remember(revision, route_class, client_ip, result)

    async def _verify(self, request: VerifyRequest) -> VerifyResult:
        bus = self._bus()
        reply = await bus.request(
            bus.subjects.auth("verify"),
            request.model_dump(by_alias=True, exclude_none=True),
            timeout=NATS_TIMEOUT_S,
            unavailable="auth",
        )
        return VerifyResult.model_validate(reply)

    async def _limit(self, path: str, client_ip: str) -> EdgeCheckResult:
        """ratelimit's decision. When it cannot be asked the request is refused (503), as
        a failing forwardAuth refused it: rules that should fail open say so themselves
        (`failOpen`, applied by the ratelimit service)."""
        bus = self._bus()
        reply = await bus.request(
            bus.subjects.ratelimit("edge"),
            {"path": path, "clientIp": client_ip},
            timeout=NATS_TIMEOUT_S,
            unavailable="ratelimit",
        )
        return EdgeCheckResult.model_validate(reply)
