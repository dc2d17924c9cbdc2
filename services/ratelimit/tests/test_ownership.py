"""Ownership: every replica agrees; `primary` gives all keys to the first live replica,
`hash` spreads them and moves few when a member leaves."""

from __future__ import annotations

from aisopod_ratelimit.ownership import Ring, instance_order, member_id


def members(*names: str) -> dict[str, str]:
    return {member_id(name): name for name in names}


def test_primary_is_the_first_live_instance_in_natural_order() -> None:
    group = members("ratelimit-10", "ratelimit-2", "ratelimit-3")
    ring = Ring(member_id("ratelimit-3"), group)
    assert {ring.owner_of(f"k{i}") for i in range(50)} == {member_id("ratelimit-2")}
    assert not ring.alone
    assert Ring(member_id("ratelimit-2"), group).alone
    assert sorted(["a-10", "a-9", "a-1"], key=instance_order) == ["a-1", "a-9", "a-10"]


def test_every_replica_computes_the_same_owner() -> None:
    group = members("ratelimit-1", "ratelimit-2", "ratelimit-3")
    for mode in ("primary", "hash"):
        rings = [Ring(m, dict(reversed(group.items())), mode) for m in group]  # type: ignore[arg-type]
        for i in range(300):
            assert len({ring.owner_of(f"ip:192.0.2.{i}") for ring in rings}) == 1


def test_alone_owns_everything() -> None:
    a = member_id("x")
    for mode in ("primary", "hash"):
        assert Ring(a, {a: "x"}, mode).owner_of("k") == a  # type: ignore[arg-type]
        assert Ring(a, {}, mode).alone  # type: ignore[arg-type]


def test_hash_spreads_load_and_a_leaving_member_moves_only_its_keys() -> None:
    group = members("ratelimit-1", "ratelimit-2", "ratelimit-3")
    ids = list(group)
    ring = Ring(ids[0], group, "hash")
    keys = [f"ip:10.0.{i >> 8}.{i & 255}" for i in range(6000)]
    owners = {key: ring.owner_of(key) for key in keys}
    counts = [list(owners.values()).count(m) for m in ids]
    assert min(counts) > 1700  # ~2000 each
    smaller = Ring(ids[0], {m: n for m, n in group.items() if m != ids[2]}, "hash")
    moved = [k for k in keys if smaller.owner_of(k) != owners[k]]
    assert {owners[k] for k in moved} == {ids[2]}
    assert len(moved) == counts[2]


def test_a_drained_replica_owns_nothing() -> None:
    others = {member_id("b"): "b"}  # "a" left the member set when it began draining
    for mode in ("primary", "hash"):
        ring = Ring(member_id("a"), others, mode)  # type: ignore[arg-type]
        assert {ring.owner_of(f"k{i}") for i in range(100)} == {member_id("b")}
