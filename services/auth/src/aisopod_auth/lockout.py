"""Per-IP lockout after failed authentication, counted by the ratelimit service.

The rule is `limits.rules[auth_failures]` (default 10 failures / 60 s → 5 min lockout,
`failOpen: false`). Each failed attempt is reported with `ratelimit.fail`; when its reply
says the key is out of budget (locked, not allowed, or no attempts remaining) the IP is
locked here until the reply's `retryAfterMs` (or the rule's lockout). Locks are kept in
memory and broadcast on `<prefix>.control.auth.lockout` so every auth replica refuses the
IP before verifying anything, without a round trip on the hot path.

Why not `ratelimit.check` before each attempt: `check` counts toward the rule, so every
successful request would spend the failure budget. Why no `reset` on success: a valid
login from the same address (a shared NAT) would wipe an attacker's count.

The limiter unreachable: with `failOpen: false` the failure cannot be counted, so the
failing IP is locked for the rule's window instead (valid credentials are unaffected).

Attempts from one IP are verified one at a time (`serial`), so a burst of concurrent
guesses cannot all pass the lock check before the first failure is counted.

An address is keyed as the ratelimit service keys it: an IPv4-mapped IPv6 address as its
IPv4 address, any other IPv6 address by its prefix (`limits.ipv6Prefix`, default /64: one
host usually holds a whole /64), so hopping between addresses of one prefix gains nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aisopod import codec
from aisopod.bus import Bus
from aisopod.clientip import lockout_key as address_key
from aisopod.config.sections.limits import RateRule
from aisopod.contracts.ratelimit import CheckResult, LimitRequest
from aisopod.errors import AisopodError, RateLimited

log = logging.getLogger("aisopod.auth.lockout")

RULE = "auth_failures"
_MAX_TRACKED = 100_000


def _now_ms() -> int:
    return int(time.time() * 1000)


def lock_duration_ms(result: CheckResult, rule: RateRule) -> int:
    """How long a `fail` reply means the key stays locked; 0 while budget remains."""
    if result.allowed and not result.locked and result.remaining > 0:
        return 0
    if result.retry_after_ms > 0:
        return result.retry_after_ms
    return int((rule.lockout_s or rule.window_s) * 1000)


class Lockout:
    def __init__(
        self,
        bus: Bus,
        rule: Callable[[], RateRule | None],
        ipv6_prefix: Callable[[], int] = lambda: 64,
    ) -> None:
        self.bus = bus
        self.rule = rule
        self.ipv6_prefix = ipv6_prefix
        self.subject = bus.subjects.control("auth.lockout")
        self._until: dict[str, int] = {}
        self._gates: dict[str, _Gate] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(self.subject, cb=self._heard)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _heard(self, msg: Msg) -> None:
        try:
            body = codec.loads(msg.data)
            self._remember(str(body["key"]), int(body["untilMs"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed lockout broadcast")

    def key_of(self, ip: str) -> str:
        return address_key(ip, self.ipv6_prefix())

    def _remember(self, key: str, until_ms: int) -> None:
        if len(self._until) >= _MAX_TRACKED:
            now = _now_ms()
            self._until = {k: v for k, v in self._until.items() if v > now}
        if until_ms > self._until.get(key, 0):
            self._until[key] = until_ms

    def retry_after_ms(self, ip: str) -> int:
        """Milliseconds this IP stays locked; 0 when it is not."""
        key = self.key_of(ip)
        until = self._until.get(key)
        if until is None:
            return 0
        left = until - _now_ms()
        if left <= 0:
            self._until.pop(key, None)
            return 0
        return left

    def check(self, ip: str) -> None:
        """Raise RATE_LIMITED (`AUTH_RATE_LIMITED`) while the IP is locked."""
        left = self.retry_after_ms(ip)
        if left:
            raise RateLimited(
                "too many failed authentication attempts; try again later",
                code="AUTH_RATE_LIMITED",
                retryAfterMs=left,
            )

    @asynccontextmanager
    async def serial(self, ip: str) -> AsyncIterator[None]:
        key = self.key_of(ip)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        gate.users += 1
        try:
            async with gate.lock:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                self._gates.pop(key, None)

    async def failed(self, ip: str) -> None:
        """Count one failed attempt from `ip`; lock it when the budget is spent."""
        rule = self.rule()
        if rule is None:  # the rule removed from the config: lockout is off
            return
        request = LimitRequest(rule=RULE, key=f"ip:{ip}")
        try:
            raw = await self.bus.request(
                self.bus.subjects.ratelimit("fail"),
                request.model_dump(by_alias=True),
                timeout=2.0,
                unavailable="the ratelimit service",
            )
            duration = lock_duration_ms(CheckResult.model_validate(raw), rule)
        except AisopodError as exc:
            if rule.fail_open:
                return
            log.warning(
                "could not count a failed authentication (%s); locking the address for %.0f s",
                exc.detail_code,
                rule.window_s,
            )
            duration = int(rule.window_s * 1000)
        if duration:
            await self.lock(self.key_of(ip), _now_ms() + duration)

    async def lock(self, key: str, until_ms: int) -> None:
        self._remember(key, until_ms)
        try:
            await self.bus.publish(self.subject, {"key": key, "untilMs": until_ms})
        except Exception:  # the local lock holds anyway
            log.warning("could not broadcast a lockout", exc_info=True)


class _Gate:
    """One IP's turn-taking lock and how many attempts hold or wait for it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0
