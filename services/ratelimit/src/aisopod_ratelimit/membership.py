"""Who the live ratelimit replicas are: heartbeats in KV `ratelimit`, watched by each.

Each replica puts `member.<id>` every `heartbeat_s` and watches `member.>`; the ring
(ownership.py) is rebuilt whenever the live set changes. Each replica counts time since a
heartbeat by its own monotonic clock; the writer's wall time in the value only ages
entries found at start, before any was heard live.

Exactness needs every replica to agree on who owns a key, whatever the timing (a stalled
event loop, a slow JetStream ack, a watch delivering late), so a replica's keys move only
once it is known to be gone, never on silence alone (docs/ratelimit.md, "Exact across
replicas"):

- A member that deletes its key (a clean drain) is dropped at once.
- A member silent for `ttl_s` is probed on its own peer subject (`probe`): "no
  responders" (NATS reports it at once when nobody subscribes: the process or its
  connection is gone) drops it; an answer keeps it; no answer in time keeps it too, and it
  is probed again every heartbeat (until NATS closes a hung connection, requests for its
  keys get the rule's fail mode).
- This replica itself decides only while its own view is current (`current()`): its
  event loop has not stalled for `ttl_s` (a ticker task notes the time every half
  heartbeat) and it is connected to NATS without a reconnect since it last re-synced.
  Otherwise it may have been dropped by the others meanwhile (a reconnect means its
  subscription was gone for a moment; a stall past the TTL is what replicas before the
  probe took for death), so it re-syncs (`resync()`: a heartbeat put and that heartbeat
  seen back through its own watch, so every earlier membership change has been applied)
  before deciding again. A JetStream outage alone (heartbeat puts failing, core NATS up)
  does not stop its decisions: nobody can find it gone while it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.js.kv import KeyValue

from aisopod import codec
from aisopod_ratelimit.metrics import MEMBER_PROBES, MEMBERS, RESYNCS
from aisopod_ratelimit.ownership import Mode, Ring

log = logging.getLogger("aisopod.ratelimit.members")

PREFIX = "member."

Probe = Callable[[str], Awaitable[bool | None]]
"""member → True (it answered), False (nobody listens on its subject: gone), None (no
answer in time: unknown)."""


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
        probe: Probe | None = None,
        link: Callable[[], int] = lambda: 0,
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
        self.probe = probe
        self._probing: dict[str, asyncio.Task[None]] = {}
        self._silent: set[str] = set()  # probed without an answer (logged once)
        # This replica's own view: `link()` is the NATS reconnect count, or -1 while
        # disconnected; the count it last re-synced at; when its event loop last ran the
        # ticker; the newest of its own heartbeats its watch has delivered (a re-sync waits
        # for that to reach the revision it put).
        self._link = link
        self._synced_link = link()
        self._awake = time.monotonic()
        self._own_revision = 0
        self._own_seen = asyncio.Event()
        self._resync: asyncio.Task[bool] | None = None
        self._replaying = True

    async def start(self) -> None:
        await self._beat()
        self._awake = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._watch(), name="ratelimit-members-watch"),
            asyncio.create_task(self._heartbeats(), name="ratelimit-heartbeat"),
            asyncio.create_task(self._ticks(), name="ratelimit-stall-ticker"),
        ]

    async def leave(self) -> None:
        """Stop claiming keys: others take them over at once (drain)."""
        self._leaving = True
        self._seen.pop(self.self_id, None)
        self._rebuild()
        with contextlib.suppress(Exception):
            await self.kv.delete(PREFIX + self.self_id)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._probing.values()]:
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

    def current(self) -> bool:
        """This replica's view can be trusted for its own keys: no stall past the TTL,
        and no moment off NATS (when the others could have found it gone) since it last
        re-synced."""
        return time.monotonic() - self._awake < self.ttl_s and self._link() == self._synced_link

    def alive_for(self, member: str) -> float:
        """Seconds until `member`, heard from recently, would count as silent (0 when it
        already does, or is unknown): how long a slow answer from it is still worth
        waiting for."""
        seen = self._seen.get(member)
        if seen is None:
            return 0.0
        return max(0.0, seen + self.ttl_s - time.monotonic())

    async def resync(self, timeout: float) -> bool:
        """Bring this replica's view up to date (one re-sync at a time, shared by every
        caller); False when it could not be done within `timeout`."""
        if self._resync is None or self._resync.done():
            self._resync = asyncio.create_task(self._resynced(), name="ratelimit-resync")
        try:
            return await asyncio.wait_for(asyncio.shield(self._resync), timeout)
        except Exception:  # timeout, NATS down: the caller applies the rule's fail mode
            return False

    # -- internals ------------------------------------------------------------------
    async def _beat(self) -> int:
        body = {"id": self.self_id, "instance": self.instance, "at": time.time()}
        return await self.kv.put(PREFIX + self.self_id, codec.dumps(body))

    async def _resynced(self) -> bool:
        link = self._link()
        started = time.monotonic()
        try:
            revision = await self._beat()
            # The watch delivers in stream order: once it hands us this heartbeat, every
            # membership change written before it has been applied to the ring.
            try:
                await asyncio.wait_for(self._echoed(revision), self.heartbeat_s)
            except TimeoutError:
                log.info("membership watch silent after a stall or a reconnect; watching anew")
                self._restart_watch()
                await self._echoed(revision)  # bounded by the caller's timeout
        except Exception:
            RESYNCS.labels("failed").inc()
            raise
        if link < 0:  # the put cannot have gone out while disconnected; be safe anyway
            RESYNCS.labels("failed").inc()
            return False
        self._seen[self.self_id] = started
        self._awake = max(self._awake, started)
        self._synced_link = link
        RESYNCS.labels("ok").inc()
        log.info("membership re-synced after a stall or a reconnect")
        return True

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if not self._leaving:
                try:
                    await self._beat()
                    self._seen[self.self_id] = time.monotonic()
                except Exception as exc:  # NATS down: others may drop us; we go on
                    log.warning("heartbeat failed: %s", type(exc).__name__)
            self._expire()

    async def _ticks(self) -> None:
        """Notes that the event loop runs: a gap past the TTL is a stall (current())."""
        while True:
            await asyncio.sleep(self.heartbeat_s / 2)
            now = time.monotonic()
            if now - self._awake < self.ttl_s:
                self._awake = now
            # else: a stall; only a re-sync makes the view current again

    def _expire(self) -> None:
        horizon = time.monotonic() - self.ttl_s
        stale = [m for m, seen in self._seen.items() if seen < horizon and m != self.self_id]
        if self.probe is None:  # no way to ask it: silence is taken for death
            for member in stale:
                log.warning("ratelimit replica %s stopped beating", self._names.get(member, member))
                del self._seen[member]
            if stale:
                self._rebuild()
            return
        for member in stale:
            if member not in self._probing:
                self._probing[member] = asyncio.create_task(
                    self._confirm(member), name="ratelimit-member-probe"
                )

    async def _confirm(self, member: str) -> None:
        """A member stopped beating: drop it only if NATS says nobody listens for it."""
        assert self.probe is not None
        name = self._names.get(member, member)
        try:
            answered = await self.probe(member)
        except Exception:  # treat as no answer: probed again next heartbeat
            log.debug("probe of %s failed", name, exc_info=True)
            answered = None
        finally:
            self._probing.pop(member, None)
        if member not in self._seen:
            return  # it left (or was found gone) meanwhile
        if answered is False:
            MEMBER_PROBES.labels("gone").inc()
            log.warning("ratelimit replica %s stopped beating and is gone", name)
            del self._seen[member]
            self._rebuild()
        elif answered:
            MEMBER_PROBES.labels("answered").inc()
            log.info("ratelimit replica %s is late with its heartbeat but answers", name)
            self._seen[member] = time.monotonic()
        else:
            MEMBER_PROBES.labels("unanswered").inc()
            if member not in self._silent:
                self._silent.add(member)
                log.warning(
                    "ratelimit replica %s stopped beating and does not answer; its keys "
                    "stay with it until NATS reports it gone",
                    name,
                )

    async def _watch(self) -> None:
        while True:
            watcher = None
            try:
                # Entries replayed at (re)start are aged by the writer's wall time.
                self._replaying = True
                watcher = await self.kv.watch(PREFIX + ">")
                async for entry in watcher:
                    if entry is None:
                        self._replaying = False
                        self.synced = True
                        self._rebuild()
                        continue
                    self._on_entry(entry)
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS restart: keep the last view, watch again
                log.warning("membership watch interrupted; retrying", exc_info=True)
                await asyncio.sleep(0.5)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def _restart_watch(self) -> None:
        """A fresh watch: after a NATS restart the old one's consumer may be gone, and
        its client notices only after missing two idle heartbeats (~10 s)."""
        old = self._tasks[0] if self._tasks else None
        if old is not None:
            old.cancel()
        task = asyncio.create_task(self._watch(), name="ratelimit-members-watch")
        if self._tasks:
            self._tasks[0] = task
        else:
            self._tasks.append(task)

    async def _echoed(self, revision: int) -> None:
        """Until the watch has delivered our own heartbeat at `revision` (or later)."""
        while self._own_revision < revision:
            self._own_seen.clear()
            await self._own_seen.wait()

    def _on_entry(self, entry: KeyValue.Entry) -> None:
        member = entry.key[len(PREFIX) :]
        if member == self.self_id:
            if entry.operation is None and entry.revision is not None:
                self._own_revision = max(self._own_revision, entry.revision)
                self._own_seen.set()
            return
        if entry.operation is not None or not entry.value:
            if self._seen.pop(member, None) is not None:
                log.info("ratelimit replica %s left", self._names.get(member, member))
                self._rebuild()
            return
        try:
            body = codec.loads(entry.value)
            age = max(0.0, time.time() - float(body["at"])) if self._replaying else 0.0
            self._names[member] = str(body.get("instance", member))
        except (ValueError, KeyError, TypeError):
            return
        if age >= self.ttl_s:
            return  # a leftover of a replica that died before we started
        fresh = member not in self._seen
        self._silent.discard(member)
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
