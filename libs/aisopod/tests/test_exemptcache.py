"""The kept exempt verdicts of the edge check (aisopod/exemptcache.py), sans I/O: used only
under the config revision ratelimit decided them under, voided by any other, bounded in
number and age, and never anything but an exemption."""

from __future__ import annotations

from typing import Any

import pytest

from aisopod.contracts.ratelimit import EdgeCheckResult
from aisopod.exemptcache import ExemptCache

IP = "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(reason: str = "exempt", revision: int | None = 7, **fields: Any) -> EdgeCheckResult:
    values: dict[str, Any] = {
        "allowed": reason in ("ok", "exempt"),
        "limit": 60,
        "remaining": 60,
        "reset_ms": 0,
        "reason": reason,
        "config_revision": revision,
    }
    values.update(fields)
    return EdgeCheckResult(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock: Clock) -> ExemptCache:
    return ExemptCache(size=4, max_age_s=60.0, clock=clock)


def test_an_exemption_is_admitted_again_under_the_same_revision(cache: ExemptCache) -> None:
    assert not cache.admits(7, "/ws", IP)
    cache.remember(7, "/ws", IP, answer())
    assert cache.admits(7, "/ws", IP)
    assert cache.admits(7, "/ws", IP)
    # The key is the upgrade path and the address: neither carries over to another.
    assert not cache.admits(7, "/openclaw", IP)
    assert not cache.admits(7, "/ws", "127.0.0.2")


def test_a_reply_from_other_rules_than_the_gateways_is_not_kept(cache: ExemptCache) -> None:
    cache.remember(8, "/ws", IP, answer(revision=7))  # ratelimit behind the gateway
    assert not cache.admits(8, "/ws", IP)
    cache.remember(6, "/ws", IP, answer(revision=7))  # ratelimit ahead of the gateway
    assert not cache.admits(6, "/ws", IP)
    cache.remember(7, "/ws", IP, answer(revision=None))  # decided by another replica
    assert not cache.admits(7, "/ws", IP)


def test_another_revision_voids_every_entry(cache: ExemptCache) -> None:
    cache.remember(7, "/ws", IP, answer())
    cache.remember(7, "/openclaw", IP, answer())
    assert not cache.admits(8, "/ws", IP)
    assert len(cache) == 0
    # Back to the old revision number (a recreated bucket): what was kept is gone for good.
    assert not cache.admits(7, "/openclaw", IP)


def test_clear_voids_every_entry(cache: ExemptCache) -> None:
    cache.remember(7, "/ws", IP, answer())
    cache.clear()
    assert not cache.admits(7, "/ws", IP)


@pytest.mark.parametrize(
    "refused", [answer("ok"), answer("limit"), answer("lockout"), answer("unreachable")]
)
def test_only_exemptions_are_kept(cache: ExemptCache, refused: EdgeCheckResult) -> None:
    cache.remember(7, "/ws", IP, refused)
    assert not cache.admits(7, "/ws", IP)
    assert len(cache) == 0


def test_an_admitted_unreachable_answer_is_not_kept(cache: ExemptCache) -> None:
    """A fail-open rule admits when the key's owner is unreachable: counted nowhere, so
    never reused either."""
    cache.remember(7, "/ws", IP, answer("unreachable", allowed=True))
    assert not cache.admits(7, "/ws", IP)


def test_an_exemption_is_used_for_the_max_age_only(cache: ExemptCache, clock: Clock) -> None:
    cache.remember(7, "/ws", IP, answer())
    clock.now += 59.9
    assert cache.admits(7, "/ws", IP)
    clock.now += 0.1
    assert not cache.admits(7, "/ws", IP)
    assert len(cache) == 0
    cache.remember(7, "/ws", IP, answer())  # asked again: kept from now
    assert cache.admits(7, "/ws", IP)


def test_a_full_cache_forgets_its_oldest_entry(cache: ExemptCache, clock: Clock) -> None:
    addresses = [f"10.0.0.{n}" for n in range(5)]
    for address in addresses:
        cache.remember(7, "/ws", address, answer())
        clock.now += 1
    assert len(cache) == 4
    assert not cache.admits(7, "/ws", addresses[0])
    assert all(cache.admits(7, "/ws", a) for a in addresses[1:])
    # Kept again, an entry becomes the youngest: the next one pushes out the one after it.
    cache.remember(7, "/ws", addresses[1], answer())
    cache.remember(7, "/ws", addresses[0], answer())
    assert cache.admits(7, "/ws", addresses[1])
    assert not cache.admits(7, "/ws", addresses[2])


def test_a_max_age_of_zero_keeps_nothing(clock: Clock) -> None:
    off = ExemptCache(max_age_s=0.0, clock=clock)
    off.remember(7, "/ws", IP, answer())
    assert not off.admits(7, "/ws", IP)
    assert len(off) == 0


def test_a_route_class_scope_covers_every_path_of_its_class(cache: ExemptCache) -> None:
    # http-api's key: the position of the route class, not the (unbounded) path.
    cache.remember(7, 2, IP, answer())
    assert cache.admits(7, 2, IP)
    assert not cache.admits(7, 0, IP)
    assert not cache.admits(8, 2, IP)  # another revision voids it
    assert not cache.admits(7, 2, IP)
