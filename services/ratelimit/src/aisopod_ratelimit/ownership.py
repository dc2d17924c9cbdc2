"""Which replica decides a key: rendezvous (highest-random-weight) hashing over members.

Pure. Every replica computes the same owner from the same member set, with a hash that
does not depend on the process (Python's `hash()` is salted per process). When a member
joins or leaves, only the keys it wins or held move (1/n of them), the rest stay put.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_MASK = (1 << 64) - 1


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


class Ring:
    """An immutable member set with an owner function."""

    __slots__ = ("_seeds", "members", "self_id")

    def __init__(self, self_id: str, members: Iterable[str]) -> None:
        self.self_id = self_id
        self.members = tuple(sorted(set(members)))
        self._seeds = tuple((m, int(m, 16) if _is_hex(m) else key_hash(m)) for m in self.members)

    @property
    def alone(self) -> bool:
        """True when this replica owns every key (no others, or none at all known)."""
        return not self.members or self.members == (self.self_id,)

    def owner_of(self, key: str) -> str:
        if self.alone:
            return self.self_id
        h = key_hash(key)
        best, best_score = self.self_id, -1
        for member, seed in self._seeds:
            score = _mix(h ^ seed)
            if score > best_score:
                best, best_score = member, score
        return best

    def without(self, member: str) -> Ring:
        return Ring(self.self_id, (m for m in self.members if m != member))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Ring)
            and other.self_id == self.self_id
            and other.members == self.members
        )

    def __hash__(self) -> int:
        return hash((self.self_id, self.members))

    def __repr__(self) -> str:
        return f"Ring(self={self.self_id}, members={list(self.members)})"


def _is_hex(value: str) -> bool:
    try:
        int(value, 16)
    except ValueError:
        return False
    return True
