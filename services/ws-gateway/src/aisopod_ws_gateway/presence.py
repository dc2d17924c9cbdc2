"""Presence: one KV `presence` entry per connection, cluster-wide, and `presence.changed`.

Each replica writes its own clients' entries and refreshes them well within the bucket
TTL, so the entries of a replica that dies expire by themselves. Every replica watches the
bucket and keeps the whole cluster's entries in memory: `system-presence`, `node.list`
and the hello snapshot read that cache (no KV round trip on a request). Entries that
stopped being refreshed are left out even before the TTL removes them. `presence.changed`
is coalesced: at most one per `COALESCE_S` per replica, after local changes.

An operator's entry is written to KV only once its connection has been open for the grace
(`gateway.presenceGraceMs`, 250 ms): one that closes sooner (a CLI call, a probe, a
reconnect storm) costs no KV put and delete. This replica lists it from the start; other
replicas see it up to the grace later, less than `presence.changed` may already lag. Nodes
are written at once: `node.list`/`node.describe` on any replica (and the runtime's tools
through them) must find a node as soon as its hello is out. So a node's entry is in KV
before its hello is sent (`write_ahead`), and a node listing first waits until this
replica's cache has caught up with the bucket (`caught_up`): the watch alone trails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from nats.js.kv import KeyValue

from aisopod.codec import dumps

if TYPE_CHECKING:
    from aisopod.principal import Principal
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.presence")

REFRESH_S = 15.0
STALE_S = 45.0  # the bucket TTL: an entry not refreshed for this long is gone
COALESCE_S = 1.0
CATCH_UP_S = 5.0  # a listing waits this long at most for the watch to reach the bucket


class Presence:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.kv: KeyValue | None = None
        # connId → (the entry's JSON, when last written): kept encoded, a third of the
        # memory of the parsed dict (docs/ws-gateway.md, memory per connection).
        self._cluster: dict[str, tuple[bytes, float]] = {}
        self._local: dict[str, Connection] = {}
        # connId → the timer that writes the entry when the grace ends: a local connection
        # is in KV exactly when it is in `_local` and not here.
        self._unwritten: dict[str, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        # Bumped on every change of `_cluster`: the snapshot's JSON (the hello's, and what
        # `entries()` parses) is joined once per revision, and again only when an entry in
        # it goes stale, instead of once per handshake.
        self.revision = 0
        self._snapshot: tuple[int, float, bytes] | None = None
        # connIds of nodes whose entry was written before their hello (not in `_local` yet):
        # not ghosts to the watch; deleted again if the connection closes before its hello.
        self._ahead: set[str] = set()
        # The last bucket revision (stream sequence) the watch has applied, and a wake-up
        # for `caught_up` each time it moves.
        self._applied = 0
        self._advanced = asyncio.Event()

    async def start(self) -> None:
        self.kv = await self.gateway.host.kv("presence")
        watcher = await self.kv.watchall()
        self._tasks = [
            asyncio.create_task(self._watch(watcher), name="presence-watch"),
            asyncio.create_task(self._refresh_loop(), name="presence-refresh"),
            asyncio.create_task(self._announce_loop(), name="presence-announce"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for timer in self._unwritten.values():
            timer.cancel()
        # Leave the cluster's view promptly rather than waiting for the TTL (entries still
        # within their grace were never written).
        written = [key for key in self._local if key not in self._unwritten]
        self._unwritten.clear()
        if self.kv is not None and written:
            await asyncio.gather(*(self.kv.delete(key) for key in written), return_exceptions=True)

    # -- local connections --------------------------------------------------------------
    def entry(self, conn: Connection, principal: Principal | None = None) -> dict[str, Any]:
        principal = principal or conn.principal
        entry: dict[str, Any] = {
            "key": conn.device_id or conn.client.get("instanceId") or conn.conn_id,
            "connId": conn.conn_id,
            "client": conn.client,
            "role": principal.role.value if principal else "operator",
            "ip": conn.ip,
            "since": conn.since_ms,
            "lastSeenMs": int(time.time() * 1000),
            "instance": self.gateway.host.instance,
        }
        if conn.node_id is not None:
            entry["nodeId"] = conn.node_id
            entry.update(self.gateway.nodes.declared(conn))
        return entry

    async def write_ahead(self, conn: Connection, principal: Principal) -> None:
        """A node's entry, in KV before its hello goes out: any replica's `node.list` after
        the hello finds it (with `caught_up`). `add` follows once the hello is sent."""
        self._ahead.add(conn.conn_id)
        await self._put(conn.conn_id, dumps(self.entry(conn, principal)))

    def abandon(self, conn: Connection) -> None:
        """The connection closed before its hello: an entry written ahead goes again."""
        if conn.conn_id in self._ahead:
            self._ahead.discard(conn.conn_id)
            self._write(self._delete(conn.conn_id))

    async def caught_up(self) -> None:
        """Until this replica's cache holds every write the bucket had when called (its
        last stream sequence), for at most `CATCH_UP_S`: a node another replica wrote just
        before its hello is listed here (the watch delivers it only eventually). Costs one
        stream info request. On NATS trouble or timeout, the cache is read as it is."""
        if self.kv is None:
            return
        try:
            status = await self.kv.status()
        except Exception as exc:
            log.warning("presence status failed: %s", type(exc).__name__)
            return
        state = status.stream_info.state
        # No message left (all expired) means no sequence the watch could still deliver.
        target = state.last_seq if state.messages else 0
        deadline = time.monotonic() + CATCH_UP_S
        while self._applied < target:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("presence watch behind the bucket: %d < %d", self._applied, target)
                return
            self._advanced.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), left)

    def add(self, conn: Connection) -> None:
        self._ahead.discard(conn.conn_id)
        self._local[conn.conn_id] = conn
        entry = dumps(self.entry(conn))
        self._cluster[conn.conn_id] = (entry, time.monotonic())
        self.revision += 1
        grace_s = self.gateway.config.presence_grace_ms / 1000
        if grace_s <= 0 or conn.node_id is not None:
            self._write(self._put(conn.conn_id, entry))
        else:
            self._unwritten[conn.conn_id] = self.gateway.loop.call_later(
                grace_s, self._grace_over, conn.conn_id
            )
        self._changed.set()

    def _grace_over(self, conn_id: str) -> None:
        self._unwritten.pop(conn_id, None)
        conn = self._local.get(conn_id)
        if conn is not None:
            self._write(self._put(conn_id, dumps(self.entry(conn))))

    def remove(self, conn: Connection) -> None:
        if self._local.pop(conn.conn_id, None) is None:
            return
        self._cluster.pop(conn.conn_id, None)
        self.revision += 1
        timer = self._unwritten.pop(conn.conn_id, None)
        if timer is not None:
            timer.cancel()  # closed within its grace: nothing in KV to delete
        elif self.kv is not None:
            self._write(self._delete(conn.conn_id))
        self._changed.set()

    def entries(self) -> list[dict[str, Any]]:
        """Every live client of the cluster (this replica's cache of KV `presence`)."""
        entries: list[dict[str, Any]] = orjson.loads(self.snapshot_json())
        return entries

    def snapshot_fragment(self) -> orjson.Fragment:
        """`entries()` for the hello snapshot, spliced as JSON by the encoder."""
        return orjson.Fragment(self.snapshot_json())

    def snapshot_json(self) -> bytes:
        """`entries()` as a JSON array, joined from the stored entries once per revision of
        presence (or when the oldest entry in it went stale), not once per handshake: it
        grows with the connections."""
        now = time.monotonic()
        horizon = now - STALE_S
        cached = self._snapshot
        if cached is not None and cached[0] == self.revision and cached[1] >= horizon:
            return cached[2]
        live = [(entry, seen) for entry, seen in self._cluster.values() if seen >= horizon]
        oldest = min((seen for _, seen in live), default=now)
        encoded = b"[" + b",".join(entry for entry, _ in live) + b"]"
        self._snapshot = (self.revision, oldest, encoded)
        return encoded

    # -- KV -----------------------------------------------------------------------------
    def _write(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, key: str, entry: bytes) -> None:
        if self.kv is None:
            return
        try:
            await self.kv.put(key, entry)
        except Exception as exc:  # NATS down: the next refresh writes it again
            log.warning("presence write failed: %s", type(exc).__name__)

    async def _delete(self, key: str) -> None:
        if self.kv is None:
            return
        try:
            await self.kv.delete(key)
        except Exception as exc:
            log.warning("presence delete failed: %s", type(exc).__name__)

    async def _watch(self, watcher: Any) -> None:
        task = asyncio.current_task()
        while True:
            try:
                update = await watcher.updates(timeout=3600)
            except asyncio.CancelledError:
                raise
            except Exception:  # timeouts and reconnects: keep watching
                await asyncio.sleep(0.5)
                continue
            if task is not None and task.cancelling():
                # nats-py waits through `wait_for`, which on 3.11 returns an update that
                # raced our cancel and drops the cancel: `stop()` would wait for nothing.
                raise asyncio.CancelledError
            if update is None:
                continue
            if update.revision is not None and update.revision > self._applied:
                self._applied = update.revision
                self._advanced.set()
            if update.operation in ("DEL", "PURGE") or not update.value:
                if self._cluster.pop(update.key, None) is not None:
                    self.revision += 1
                continue
            value = bytes(update.value)
            try:
                parsed = orjson.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                log.warning("malformed presence entry %s", update.key)
                continue
            if self._is_ghost(update.key, parsed):
                continue
            self._cluster[update.key] = (value, time.monotonic())
            self.revision += 1

    def _is_ghost(self, key: str, entry: dict[str, Any]) -> bool:
        """An entry this replica wrote for a connection it no longer has: its put was still
        on the way when the connection closed, and reached KV after (or raced) the delete.
        Listing it would show a closed client until the bucket's TTL, and the TTL ends an
        entry without telling the watchers, so the cache would keep it for good. It is
        deleted again instead (a second delete of a deleted key is harmless)."""
        if entry.get("instance") != self.gateway.host.instance or key in self._local:
            return False
        if key in self._ahead:  # written before its hello; `add` is on the way
            return False
        if self._cluster.pop(key, None) is not None:
            self.revision += 1
        if self.kv is not None:
            self._write(self._delete(key))
        return True

    def prune_stale(self, now: float | None = None) -> int:
        """Forget cached entries not refreshed for `STALE_S` (already left out of every
        listing): the bucket's TTL removes them from KV without a watch update, so this is
        what bounds the cache after a replica died or a delete was lost. How many went."""
        horizon = (time.monotonic() if now is None else now) - STALE_S
        stale = [key for key, (_, seen) in self._cluster.items() if seen < horizon]
        for key in stale:
            del self._cluster[key]
        if stale:
            self.revision += 1
        return len(stale)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            # In a call of its own: the list of connections it writes must not outlive the
            # refresh (held across the sleep, it kept every connection closed since, with
            # its socket's objects, until the next one).
            await self._refresh()
            self.prune_stale()

    async def _refresh(self) -> None:
        # Entries still within their grace are written when it ends, not here.
        conns = [c for key, c in self._local.items() if key not in self._unwritten]
        for start in range(0, len(conns), 256):
            await asyncio.gather(
                *(self._put(c.conn_id, dumps(self.entry(c))) for c in conns[start : start + 256]),
                return_exceptions=True,
            )

    async def _announce_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            with contextlib.suppress(Exception):
                await self.gateway.host.bus.publish_event(
                    "presence.changed", {"presence": self.entries()}
                )
            await asyncio.sleep(COALESCE_S)
