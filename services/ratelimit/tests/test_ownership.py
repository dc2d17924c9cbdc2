"""Rendezvous hashing: every replica agrees, load spreads, a change moves few keys."""

from __future__ import annotations

from aisopod_ratelimit.ownership import Ring, member_id


def test_every_replica_computes_the_same_owner() -> None:
    a, b, c = member_id("ratelimit-1"), member_id("ratelimit-2"), member_id("ratelimit-3")
    rings = [Ring(a, [a, b, c]), Ring(b, [c, b, a]), Ring(c, [b, a, c])]
    for i in range(500):
        key = f"ip:192.0.2.{i}"
        assert len({ring.owner_of(key) for ring in rings}) == 1


def test_alone_owns_everything() -> None:
    a = member_id("x")
    assert Ring(a, [a]).owner_of("k") == a
    assert Ring(a, []).owner_of("k") == a


def test_load_spreads_and_a_leaving_member_moves_only_its_keys() -> None:
    ids = [member_id(f"ratelimit-{n}") for n in range(1, 4)]
    ring = Ring(ids[0], ids)
    keys = [f"ip:10.0.{i >> 8}.{i & 255}" for i in range(6000)]
    owners = {key: ring.owner_of(key) for key in keys}
    counts = [list(owners.values()).count(m) for m in ids]
    assert min(counts) > 1700  # ~2000 each
    smaller = ring.without(ids[2])
    moved = [k for k in keys if smaller.owner_of(k) != owners[k]]
    assert {owners[k] for k in moved} == {ids[2]}
    assert len(moved) == counts[2]


def test_a_drained_replica_owns_nothing() -> None:
    a, b = member_id("a"), member_id("b")
    ring = Ring(a, [b])
    assert {ring.owner_of(f"k{i}") for i in range(100)} == {b}
