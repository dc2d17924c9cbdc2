"""Presence: one KV `presence` entry per connection, cluster-wide, and `presence.changed`.

Each replica writes its own clients' entries and refreshes them well within the bucket
TTL, so the entries of a replica that dies expire by themselves. Every replica watches the
bucket and keeps the whole cluster's entries in memory: `system-presence`, `node.list`
and the hello snapshot read that cache (no KV round trip on a request). Entries that
stopped being refreshed are left out even before the TTL removes them. `presence.changed`
is coalesced: at most one per `COALESCE_S` per replica, after local changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from nats.js.kv import KeyValue

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.presence")

REFRESH_S = 15.0
STALE_S = 45.0  # the bucket TTL: an entry not refreshed for this long is gone
COALESCE_S = 1.0


class Presence:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.kv: KeyValue | None = None
        self._cluster: dict[str, tuple[dict[str, Any], float]] = {}
        self._local: dict[str, Connection] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._writes: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

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
        # Leave the cluster's view promptly rather than waiting for the TTL.
        if self.kv is not None and self._local:
            await asyncio.gather(
                *(self.kv.delete(key) for key in list(self._local)), return_exceptions=True
            )

    # -- local connections --------------------------------------------------------------
    def entry(self, conn: Connection) -> dict[str, Any]:
        principal = conn.principal
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

    def add(self, conn: Connection) -> None:
        self._local[conn.conn_id] = conn
        entry = self.entry(conn)
        self._cluster[conn.conn_id] = (entry, time.monotonic())
        self._write(self._put(conn.conn_id, entry))
        self._changed.set()

    def remove(self, conn: Connection) -> None:
        if self._local.pop(conn.conn_id, None) is None:
            return
        self._cluster.pop(conn.conn_id, None)
        if self.kv is not None:
            self._write(self._delete(conn.conn_id))
        self._changed.set()

    def entries(self) -> list[dict[str, Any]]:
        """Every live client of the cluster (this replica's cache of KV `presence`)."""
        horizon = time.monotonic() - STALE_S
        return [entry for entry, seen in self._cluster.values() if seen >= horizon]

    # -- KV -----------------------------------------------------------------------------
    def _write(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, key: str, entry: dict[str, Any]) -> None:
        if self.kv is None:
            return
        try:
            await self.kv.put(key, orjson.dumps(entry))
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
        while True:
            try:
                update = await watcher.updates(timeout=3600)
            except asyncio.CancelledError:
                raise
            except Exception:  # timeouts and reconnects: keep watching
                await asyncio.sleep(0.5)
                continue
            if update is None:
                continue
            if update.operation in ("DEL", "PURGE") or not update.value:
                self._cluster.pop(update.key, None)
                continue
            try:
                self._cluster[update.key] = (orjson.loads(update.value), time.monotonic())
            except ValueError:
                log.warning("malformed presence entry %s", update.key)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            conns = list(self._local.values())
            for start in range(0, len(conns), 256):
                chunk = conns[start : start + 256]
                await asyncio.gather(
                    *(self._put(c.conn_id, self.entry(c)) for c in chunk), return_exceptions=True
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
