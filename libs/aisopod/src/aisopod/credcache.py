"""Verified credentials kept by an edge so a repeated `connect` skips `auth.verify` (pure).

What is kept: auth's answer (`VerifyResult`) for one exact question, keyed by the SHA-256
of everything auth's answer to a token-only attempt depends on (the credential fields, the
role, the requested scopes, the Origin and whether the client is on this machine); the
secret itself is never kept. Only successes are kept, so a wrong guess always reaches auth
and its lockout, and only answers that carry nothing one-time (no device proof, which is
bound to the socket's nonce; no password, whose slow hash is the point; no device token
being handed over).

When an entry may be used (all must hold, else the attempt goes to auth as before):
- auth's current generation is known (heard from its start-up announcement or from a
  verification reply) and the entry was stored under it;
- no invalidation was heard since it was stored (`clear`: any `control.auth.changed` or
  `control.connections.close`, a config change of `auth`, a lost NATS connection);
- the client's address is not locked out by auth (`control.auth.lockout`);
- it is younger than the TTL (the bound if an invalidation were ever lost).

A verification in flight while an invalidation arrives is not stored (`epoch`): its answer
may predate the change.

docs/ws-gateway.md, "The verified-credential cache".
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aisopod.contracts.auth import VerifyResult

DEFAULT_TTL_S = 60.0
DEFAULT_SIZE = 4096
GENERATIONS_KEPT = 16  # auth replicas alive at once (each has its own generation)
LOCKS_TRACKED = 100_000


@dataclass(frozen=True, slots=True)
class Question:
    """What auth's answer to a token-only `connect` depends on."""

    token: str | None
    device_token: str | None
    bearer: str | None
    role: str
    scopes: Sequence[str] | None  # None: everything the credential allows
    origin: str | None
    direct_loopback: bool

    def key(self) -> bytes | None:
        """The digest the answer is kept under; None when there is no token to key on."""
        if not (self.token or self.device_token or self.bearer):
            return None
        material = "\0".join(
            (
                "v1",
                self.token or "",
                self.device_token or "",
                self.bearer or "",
                self.role,
                "*" if self.scopes is None else ",".join(self.scopes),
                self.origin or "",
                "1" if self.direct_loopback else "0",
            )
        )
        return hashlib.sha256(material.encode()).digest()


def cacheable(result: VerifyResult) -> bool:
    """An answer that may be given again: no one-time device token in it, from an auth
    that says its generation."""
    return result.device_token is None and result.generation is not None


class CredentialCache:
    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        size: int = DEFAULT_SIZE,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self.wall_ms = wall_ms
        self.epoch = 0
        self._entries: OrderedDict[bytes, tuple[float, str, VerifyResult]] = OrderedDict()
        self._generations: OrderedDict[str, None] = OrderedDict()
        self._stopped: OrderedDict[str, None] = OrderedDict()  # never trusted again
        self._locked_until_ms: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.clears = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def __len__(self) -> int:
        return len(self._entries)

    # -- invalidation --------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every entry; answers in flight are not stored (their epoch is older)."""
        self._entries.clear()
        self.epoch += 1
        self.clears += 1

    def generation(self, generation: str, *, alive: bool = True) -> None:
        """auth announced (or a reply carried) `generation`; `alive=False`: it is stopping
        (its late replies are not kept either). A generation not seen before means an auth
        process started: whatever older ones verified is dropped."""
        if not alive:
            self._generations.pop(generation, None)
            self._stopped[generation] = None
            while len(self._stopped) > GENERATIONS_KEPT:
                self._stopped.popitem(last=False)
            self.clear()
            return
        if generation in self._generations or generation in self._stopped:
            return
        self.clear()
        self._generations[generation] = None
        while len(self._generations) > GENERATIONS_KEPT:
            self._generations.popitem(last=False)

    def forget_generations(self) -> None:
        """Nothing heard from auth can be trusted any more (a lost NATS connection)."""
        self._generations.clear()
        self.clear()

    def lock(self, key: str, until_ms: int) -> None:
        """auth locked the address key `key` (clientip.lockout_key) until `until_ms`."""
        now = self.wall_ms()
        if len(self._locked_until_ms) >= LOCKS_TRACKED:
            self._locked_until_ms = {k: v for k, v in self._locked_until_ms.items() if v > now}
        if until_ms > self._locked_until_ms.get(key, 0):
            self._locked_until_ms[key] = until_ms

    def locked(self, lockout_key: str) -> bool:
        until = self._locked_until_ms.get(lockout_key)
        return until is not None and until > self.wall_ms()

    # -- use -----------------------------------------------------------------------------
    def get(self, key: bytes, lockout_key: str) -> VerifyResult | None:
        if not self.enabled or not self._generations or self.locked(lockout_key):
            self.misses += 1
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        expires, generation, result = entry
        if expires <= self.clock() or generation not in self._generations:
            del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return result

    def put(self, key: bytes, result: VerifyResult, epoch: int) -> bool:
        """Keep auth's answer, asked at `epoch`; False when it is not kept (an
        invalidation since, or not cacheable)."""
        if not self.enabled or not cacheable(result):
            return False
        assert result.generation is not None
        self.generation(result.generation)  # may clear: then `epoch` is stale
        if epoch != self.epoch or result.generation not in self._generations:
            return False
        self._entries[key] = (self.clock() + self.ttl_s, result.generation, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return True
