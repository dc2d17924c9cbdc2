"""Deciding at the owner, and the fail mode when the owner's state is out of reach."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from aisopod.config.model import GatewayConfig
from aisopod.errors import InvalidParams
from aisopod_ratelimit.limiter import Decision
from aisopod_ratelimit.ownership import Ring, member_id
from aisopod_ratelimit.peers import OwnerGone, OwnerUnreachable
from aisopod_ratelimit.service import RateLimitService

from .clock import FakeClock

OTHER = member_id("ratelimit-other")


class Unreachable:
    """Stands in for the peer link when NATS or the owner does not answer."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def forward(self, *args: Any) -> Decision:
        self.calls += 1
        raise self.error


class Membership:
    def __init__(self, service: RateLimitService) -> None:
        self.service = service

    def current(self) -> bool:
        return True

    def alive_for(self, member: str) -> float:
        return 0.0

    def mark_dead(self, member: str) -> None:
        ring = self.service.ring
        self.service.ring = Ring(ring.self_id, {ring.self_id: "self"}, ring.mode)


def service_with_peer(peer: Any) -> RateLimitService:
    host: Any = SimpleNamespace(instance="ratelimit-self")
    service = RateLimitService(host, clock=FakeClock())
    service.apply(GatewayConfig())
    # Hash ownership, so that some keys belong to the other replica.
    service.ring = Ring(service.self_id, {service.self_id: "b", OTHER: "a"}, "hash")
    service._peers = peer
    return service


def owned_by_other(service: RateLimitService) -> str:
    return next(key for i in range(100) if service.ring.owner_of(key := f"ip:192.0.2.{i}") == OTHER)


async def test_unreachable_owner_fails_open_or_closed_per_rule() -> None:
    service = service_with_peer(Unreachable(OwnerUnreachable("timeout")))
    key = owned_by_other(service)
    open_ = await service.decide("check", service.rule("http"), key)
    closed = await service.decide("fail", service.rule("auth_failures"), key)
    assert (open_.allowed, open_.reason) == (True, "unreachable")
    assert (closed.allowed, closed.reason, closed.retry_after_ms) == (False, "unreachable", 1000)
    reset = await service.decide("reset", service.rule("auth_failures"), key)
    assert not reset.allowed


async def test_a_gone_owner_is_dropped_and_the_key_decided_here() -> None:
    peer = Unreachable(OwnerGone(OTHER))
    service = service_with_peer(peer)
    service._membership = Membership(service)  # type: ignore[assignment]
    key = owned_by_other(service)
    decision = await service.decide("check", service.rule("http"), key)
    assert (decision.allowed, decision.reason, decision.remaining) == (True, "ok", 599)
    assert service.ring.alone
    await service.decide("check", service.rule("http"), key)
    assert peer.calls == 1  # the second went straight to the local limiter


class SlowOwner:
    """An owner that answers, but only after `delay` seconds (a loaded machine)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def forward(
        self, member: str, op: str, rule: str, key: str, cost: int, timeout: float
    ) -> Decision:
        if timeout < self.delay:
            raise OwnerUnreachable("TimeoutError")
        return Decision(False, 600, 0, 1000, 1000, reason="limit")


class HeardFrom(Membership):
    def alive_for(self, member: str) -> float:
        return 3.0 if member == OTHER else 0.0


async def test_a_slow_owner_still_beating_is_waited_for_not_failed_open() -> None:
    service = service_with_peer(SlowOwner(delay=1.0))
    key = owned_by_other(service)
    silent = await service.decide("check", service.rule("http"), key)
    assert (silent.allowed, silent.reason) == (True, "unreachable")  # fail open, as before
    service._membership = HeardFrom(service)  # type: ignore[assignment]
    heard = await service.decide("check", service.rule("http"), key)
    assert (heard.allowed, heard.reason) == (False, "limit")  # the owner's answer


async def test_unknown_rules_and_oversized_keys_are_invalid_params() -> None:
    service = service_with_peer(Unreachable(OwnerUnreachable("x")))
    with pytest.raises(InvalidParams):
        service.rule("nope")
    with pytest.raises(InvalidParams):
        await service.decide("check", service.rule("http"), "k" * 600)


async def test_an_exempt_key_is_answered_here_whoever_owns_it() -> None:
    """Its answer reads no window or lockout, so it needs no owner (and never a forward);
    a reset still goes to the owner, whose window it clears."""
    peer = Unreachable(OwnerUnreachable("timeout"))
    service = service_with_peer(peer)
    service.apply(GatewayConfig.model_validate({"limits": {"exemptCidrs": ["192.0.2.0/24"]}}))
    key = owned_by_other(service)
    for op in ("check", "fail", "status"):
        rule = service.rule("http")
        decision = await service.decide(op, rule, key)
        assert (decision.allowed, decision.reason) == (True, "exempt")
    assert peer.calls == 0
    await service.decide("reset", service.rule("http"), key)
    assert peer.calls == 1
    # A rule exemptions do not apply to still counts at the owner.
    failure = await service.decide("fail", service.rule("auth_failures"), key)
    assert failure.reason == "unreachable" and peer.calls == 2
