"""Lockouts shared through KV `ratelimit` (`lock.<rule>.<keyhash>`), so one outlives a
change of owner (a replica restarted, joined or left) and a restart of the only one.

Lockouts are rare (one per abusive key per lockout period), so a KV write each costs
nothing on the decision path: the owner applies a lockout locally at once and writes it
in the background; every other replica watches the keys and mirrors them into its
limiter in stream order (a replica skips its own writes: replaying its own lock-lift-lock
would otherwise lift the second lock). A lift (reset) is written as `until: 0`. Entries
expire with the bucket's TTL (1 h), so a lockout longer than that survives owner changes
only for its first hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid

from nats.js.kv import KeyValue

from aisopod import codec
from aisopod_ratelimit.limiter import Limiter

log = logging.getLogger("aisopod.ratelimit.locks")

PREFIX = "lock."


def lock_key(rule: str, key: str) -> str:
    return f"{PREFIX}{rule}.{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"


class LockStore:
    def __init__(self, kv: KeyValue, limiter: Limiter) -> None:
        self.kv = kv
        # This process's writes, not this replica's: after a restart its old ones apply.
        self.origin = uuid.uuid4().hex
        self.limiter = limiter
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def start(self, timeout: float = 5.0) -> None:
        """Watch, and wait (bounded) until the stored lockouts are mirrored: a replica
        must hold them before it claims any key."""
        self._task = asyncio.create_task(self._watch(), name="ratelimit-locks-watch")
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            log.warning("stored lockouts not loaded within %.0f s; going on", timeout)

    async def stop(self) -> None:
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=1.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None

    def publish(self, rule: str, key: str, until_ms: int) -> None:
        """Limiter listener: write a lockout (or its lift) in the background."""
        task = asyncio.ensure_future(self._write(rule, key, until_ms))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, rule: str, key: str, until_ms: int) -> None:
        body = codec.dumps({"rule": rule, "key": key, "until": until_ms, "by": self.origin})
        try:
            await self.kv.put(lock_key(rule, key), body)
        except Exception as exc:  # held locally anyway; only a change of owner loses it
            log.warning("could not share a lockout of %s: %s", rule, type(exc).__name__)

    async def _watch(self) -> None:
        while True:
            try:
                watcher = await self.kv.watch(PREFIX + ">")
                async for entry in watcher:
                    if entry is None:
                        self._synced.set()
                        continue
                    if entry.operation is not None or not entry.value:
                        continue
                    self._apply(entry.value)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("lockout watch interrupted; retrying", exc_info=True)
                await asyncio.sleep(0.5)

    def _apply(self, value: bytes) -> None:
        try:
            body = codec.loads(value)
            rule, key, until = str(body["rule"]), str(body["key"]), int(body["until"])
        except (ValueError, KeyError, TypeError):
            return
        if body.get("by") == self.origin:
            return
        if until <= 0 or until > self.limiter.now_ms():
            self.limiter.mirror_lock(rule, key, until)
