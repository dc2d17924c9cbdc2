"""Who the live ratelimit replicas are: heartbeats in KV `ratelimit`, watched by each.

Each replica puts `member.<id>` every `heartbeat_s` and watches `member.>`; a member not
heard from for `ttl_s` is dropped, one that deletes its key (a clean drain) at once.
The ring (ownership.py) is rebuilt whenever the live set changes. Each replica counts
time since a heartbeat by its own monotonic clock; the writer's wall time in the value
only ages entries found at start, before any was heard live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.js.kv import KeyValue

from aisopod import codec
from aisopod_ratelimit.metrics import MEMBERS
from aisopod_ratelimit.ownership import Mode, Ring

log = logging.getLogger("aisopod.ratelimit.members")

PREFIX = "member."


class Membership:
    def __init__(
        self,
        kv: KeyValue,
        self_id: str,
        instance: str,
        *,
        heartbeat_s: float = 1.0,
        ttl_s: float = 3.5,
        mode: Mode = "primary",
        on_change: Callable[[Ring], None] | None = None,
    ) -> None:
        self.kv = kv
        self.self_id = self_id
        self.instance = instance
        self.heartbeat_s = heartbeat_s
        self.ttl_s = ttl_s
        self.on_change = on_change
        self.mode: Mode = mode
        self.ring = Ring(self_id, {self_id: instance}, mode)
        self.synced = False  # the watch delivered every member known at start
        self._seen: dict[str, float] = {self_id: time.monotonic()}
        self._names: dict[str, str] = {self_id: instance}
        self._leaving = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._watch(), name="ratelimit-members-watch"),
            asyncio.create_task(self._heartbeats(), name="ratelimit-heartbeat"),
        ]

    async def leave(self) -> None:
        """Stop claiming keys: others take them over at once (drain)."""
        self._leaving = True
        self._seen.pop(self.self_id, None)
        self._rebuild()
        with contextlib.suppress(Exception):
            await self.kv.delete(PREFIX + self.self_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        self._tasks = []

    def set_mode(self, mode: Mode) -> None:
        if mode != self.mode:
            self.mode = mode
            self._rebuild()

    def mark_dead(self, member: str) -> None:
        """A peer did not answer as owner (no responders): drop it until it beats again."""
        if member != self.self_id and self._seen.pop(member, None) is not None:
            log.warning("ratelimit replica %s is gone", self._names.get(member, member))
            self._rebuild()

    # -- internals ------------------------------------------------------------------
    async def _beat(self) -> None:
        body = {"id": self.self_id, "instance": self.instance, "at": time.time()}
        await self.kv.put(PREFIX + self.self_id, codec.dumps(body))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if not self._leaving:
                try:
                    await self._beat()
                    self._seen[self.self_id] = time.monotonic()
                except Exception as exc:  # NATS down: others will drop us; we go on
                    log.warning("heartbeat failed: %s", type(exc).__name__)
            self._expire()

    def _expire(self) -> None:
        horizon = time.monotonic() - self.ttl_s
        stale = [m for m, seen in self._seen.items() if seen < horizon and m != self.self_id]
        for member in stale:
            log.warning("ratelimit replica %s stopped beating", self._names.get(member, member))
            del self._seen[member]
        if stale:
            self._rebuild()

    async def _watch(self) -> None:
        while True:
            try:
                watcher = await self.kv.watch(PREFIX + ">")
                async for entry in watcher:
                    if entry is None:
                        self.synced = True
                        self._rebuild()
                        continue
                    self._on_entry(entry)
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS restart: keep the last view, watch again
                log.warning("membership watch interrupted; retrying", exc_info=True)
                await asyncio.sleep(0.5)

    def _on_entry(self, entry: KeyValue.Entry) -> None:
        member = entry.key[len(PREFIX) :]
        if member == self.self_id:
            return
        if entry.operation is not None or not entry.value:
            if self._seen.pop(member, None) is not None:
                log.info("ratelimit replica %s left", self._names.get(member, member))
                self._rebuild()
            return
        try:
            body = codec.loads(entry.value)
            age = max(0.0, time.time() - float(body["at"])) if not self.synced else 0.0
            self._names[member] = str(body.get("instance", member))
        except (ValueError, KeyError, TypeError):
            return
        if age >= self.ttl_s:
            return  # a leftover of a replica that died before we started
        fresh = member not in self._seen
        self._seen[member] = time.monotonic() - age
        if fresh:
            log.info("ratelimit replica %s joined", self._names[member])
            if self.synced:
                self._rebuild()

    def _rebuild(self) -> None:
        ring = Ring(self.self_id, {m: self._names.get(m, m) for m in self._seen}, self.mode)
        MEMBERS.set(len(ring.members))
        if ring != self.ring:
            self.ring = ring
            names = ", ".join(self._names.get(m, m) for m in ring.members) or "none"
            log.info("replicas (%s ownership, first is primary): %s", ring.mode, names)
            if self.on_change is not None:
                self.on_change(ring)
