"""Which replica decides a key. Pure; every replica computes the same owner from the same
member set (docs/ratelimit.md, "Exact across replicas").

- `primary` (default): the first live member in instance order (`ratelimit-1` before
  `ratelimit-2`, numbers compared as numbers) owns every key; the others forward their
  callers' decisions to it over NATS and take over when it dies.
- `hash`: rendezvous (highest-random-weight) hashing spreads keys over the members; only
  the keys of a member that joins or leaves move. For many replicas behind a load
  balancer that picks at random: each replica decides its share, at the price of one
  NATS round trip for (n-1)/n of the requests.

The hash does not depend on the process (Python's `hash()` is salted per process).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Literal

Mode = Literal["primary", "hash"]
_MASK = (1 << 64) - 1
_DIGITS = re.compile(r"(\d+)")


def _mix(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit mix."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def key_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def member_id(instance: str) -> str:
    """A short stable token for an instance name: safe in KV keys and NATS subjects."""
    return hashlib.blake2b(instance.encode(), digest_size=8).hexdigest()


def instance_order(instance: str) -> tuple[tuple[int, str], ...]:
    """Natural order of instance names: `ratelimit-2` before `ratelimit-10`."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in _DIGITS.split(instance))


class Ring:
    """An immutable member set (id → instance name) with an owner function."""

    __slots__ = ("_primary", "_seeds", "members", "mode", "self_id")

    def __init__(self, self_id: str, members: Mapping[str, str], mode: Mode = "primary") -> None:
        self.self_id = self_id
        self.mode = mode
        ordered = sorted(members, key=lambda m: (instance_order(members[m]), m))
        self.members = tuple(ordered)
        self._primary = ordered[0] if ordered else self_id
        self._seeds = tuple((m, int(m, 16) if _is_hex(m) else key_hash(m)) for m in ordered)

    @property
    def alone(self) -> bool:
        """True when this replica owns every key."""
        if self.mode == "primary":
            return self._primary == self.self_id
        return not self.members or self.members == (self.self_id,)

    def owner_of(self, key: str) -> str:
        if self.mode == "primary" or len(self.members) < 2:
            return self._primary
        h = key_hash(key)
        best, best_score = self._primary, -1
        for member, seed in self._seeds:
            score = _mix(h ^ seed)
            if score > best_score:
                best, best_score = member, score
        return best

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ring) and (other.self_id, other.members, other.mode) == (
            self.self_id,
            self.members,
            self.mode,
        )

    def __hash__(self) -> int:
        return hash((self.self_id, self.members, self.mode))

    def __repr__(self) -> str:
        return f"Ring({self.mode}, self={self.self_id}, members={list(self.members)})"


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True
