"""`auth.verify` for the handshake, with the verified-credential cache (aisopod.credcache).

A token-only `connect` whose exact question auth answered before is admitted from the
cache with no NATS round trip; everything else is asked as before. What keeps the cache
honest is heard here: `control.auth.changed` (revocations, approvals, auth's config
section, an auth process starting or stopping), `control.connections.close` (auth's closing
orders), `control.auth.lockout` (a locked address skips the cache), this process's own
config watcher (a change of `auth`), and the NATS connection itself (after any reconnect
nothing heard before is trusted). docs/ws-gateway.md, "The verified-credential cache".

An upgrade admitted without a NATS round trip (an exempt address, exemptcache.py) gets one
anyway, started with its 101 (`order`): a PING whose PONG comes after every message
nats-server sent this process before it, so a revocation published before the client
could have learnt of it is applied before its `connect` may use the cache ("Revocation
latency").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from aisopod.clientip import lockout_key
from aisopod.compat.natspy import flush_in_order, ping_now
from aisopod.contracts.auth import AuthChanged, VerifyRequest, VerifyResult
from aisopod.credcache import CredentialCache, Question
from aisopod.errors import InternalError
from aisopod_ws_gateway import metrics

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from aisopod.config.model import GatewayConfig
    from aisopod.host import ServiceHost

log = logging.getLogger("aisopod.ws.credentials")

VERIFY_TIMEOUT_S = 5.0
ORDER_TIMEOUT_S = 5  # nats-py takes whole seconds


class Verifier:
    """The handshake's credential check: the cache, else `auth.verify`."""

    def __init__(self, host: ServiceHost, ttl_s: float) -> None:
        self.host = host
        self.cache = CredentialCache(ttl_s=ttl_s)
        self._subs: list[Any] = []
        self._reconnects = 0
        self._orders: set[asyncio.Task[None]] = set()
        metrics.register_credential_cache(self.cache)

    async def start(self) -> None:
        bus = self.host.bus
        control = bus.subjects.control
        self._reconnects = self._nats_reconnects()
        self._subs = [
            await bus.nc.subscribe(control("auth.changed"), cb=self._on_changed),
            await bus.nc.subscribe(control("connections.close"), cb=self._on_close_order),
            await bus.nc.subscribe(control("auth.lockout"), cb=self._on_lockout),
        ]
        self.host.config.on_change(self._on_config)

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []

    # -- what invalidates ------------------------------------------------------------------
    # The callbacks never await: nats-py runs each subscription's callback in its own task,
    # woken in arrival order, so an invalidation heard before a stale verification reply
    # is applied before the handshake waiting for that reply resumes (then `put` sees a
    # newer epoch and keeps nothing).
    async def _on_changed(self, msg: Msg) -> None:
        try:
            change = AuthChanged.model_validate_json(msg.data)
        except ValidationError:
            log.warning("malformed auth.changed; dropping every verified credential")
            self.cache.clear()
            return
        self.cache.clear()  # whatever the reason
        if change.generation is not None and change.reason in ("started", "stopping"):
            self.cache.generation(change.generation, alive=change.reason == "started")

    async def _on_close_order(self, _msg: Msg) -> None:
        self.cache.clear()

    async def _on_lockout(self, msg: Msg) -> None:
        try:
            body = orjson.loads(msg.data)
            self.cache.lock(str(body["key"]), int(body["untilMs"]))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed auth.lockout broadcast")

    def _on_config(self, new: GatewayConfig, old: GatewayConfig) -> None:
        if new.auth != old.auth:
            self.cache.clear()

    def _nats_reconnects(self) -> int:
        return int(self.host.bus.nc.stats.get("reconnects", 0))

    def _connection_intact(self) -> bool:
        """Connected, and on the same NATS connection as when the cache was last trusted:
        an order published while we were away was never delivered to us."""
        nc = self.host.bus.nc
        if not nc.is_connected:
            return False
        reconnects = self._nats_reconnects()
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            self.cache.forget_generations()
        return True

    # -- ordering ----------------------------------------------------------------------------
    def order(self) -> asyncio.Future[Any] | None:
        """A NATS round trip started now, for an upgrade no request ordered: its `connect`
        may use the cache once it is back (`verify(ordered=…)`). A PING written at once
        when nothing is queued (no task, no flusher hop), else nats-py's `flush`. None
        when the cache is off (nothing to order)."""
        if not self.cache.enabled:
            return None
        nc = self.host.bus.nc
        pong = ping_now(nc)
        if pong is not None:
            return pong
        task = asyncio.ensure_future(flush_in_order(nc, ORDER_TIMEOUT_S))
        self._orders.add(task)
        task.add_done_callback(self._ordered)
        return task

    def _ordered(self, task: asyncio.Task[None]) -> None:
        self._orders.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed ping only means `verify` asks auth

    # -- the check ---------------------------------------------------------------------------
    async def verify(
        self, request: VerifyRequest, ordered: asyncio.Future[Any] | None = None
    ) -> VerifyResult:
        """`ordered`: the round trip `order` started for a connection admitted without one;
        the cache is used only once it is back (a failed one: auth is asked)."""
        return await self.check(question_of(request), request.client_ip, lambda: request, ordered)

    async def check(
        self,
        question: Question | None,
        client_ip: str,
        request: Callable[[], VerifyRequest],
        ordered: asyncio.Future[Any] | None = None,
    ) -> VerifyResult:
        """`verify` for a handshake that has not built its request yet: `question` (None
        for what is always asked) is looked up, and `request()` is built only when auth
        is asked (a cache hit builds none: ~20 µs of models per handshake)."""
        key = question.key() if question is not None else None
        ipv6_prefix = int(getattr(self.host.config.current.limits, "ipv6_prefix", 64))
        if key is not None and ordered is not None and not await _completed(ordered):
            key = None
        if key is not None and self._connection_intact():
            cached = self.cache.get(key, lockout_key(client_ip, ipv6_prefix))
            if cached is not None:
                return cached
        epoch = self.cache.epoch
        bus = self.host.bus
        reply = await bus.request(
            bus.subjects.auth("verify"),
            request().model_dump(by_alias=True, mode="json"),
            timeout=VERIFY_TIMEOUT_S,
            unavailable="the auth service",
        )
        try:
            result = VerifyResult.model_validate(reply)
        except ValidationError:
            raise InternalError("malformed reply from the auth service") from None
        if key is not None and self._connection_intact():
            self.cache.put(key, result, epoch)
        return result


def question_of(request: VerifyRequest) -> Question | None:
    """What the cache keys a token-only attempt on; None for what is always asked (a
    password, a device proof)."""
    auth = request.auth
    if auth.password or request.device is not None:
        return None
    return Question(
        token=auth.token,
        device_token=auth.device_token,
        bearer=request.bearer,
        role=request.role,
        scopes=request.scopes,
        origin=request.origin,
        direct_loopback=request.direct_loopback,
    )


async def _completed(round_trip: asyncio.Future[Any]) -> bool:
    """Whether the round trip came back (at once when it did already). Waited for without
    cancelling it: nats-py resolves a PING's future itself, and a lost connection never
    does (then the timeout)."""
    if not round_trip.done():
        await asyncio.wait((round_trip,), timeout=ORDER_TIMEOUT_S)
        if not round_trip.done():
            return False
    return not round_trip.cancelled() and round_trip.exception() is None
