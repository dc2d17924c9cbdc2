"""One run at a time per session, across replicas: a lane key in KV `runs`.

`lane.<session>` holds `{runId, leaseUntil}` of the run that owns the session, or `{}`
when free. Taking it is a KV create or compare-and-set (atomic across replicas); a run that
finds it taken waits, watching the key. A lane whose owner is finished or lost (its lease
expired) is taken over by compare-and-set, so a dead runtime never blocks a session longer
than its lease.

The lane is taken in the same round trip as the run record is created (runner.submit), so
another runtime may find a lane naming a run whose record is not stored yet (or whose
record write is being retried through a leader election). The lane's own `leaseUntil`
covers that window: an owner without a record is alive until then (`owner_alive`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod_runtime.kvview import get_json, is_value, kv_token
from aisopod_runtime.runs import is_terminal, lease_expired, now_ms

RECHECK_S = 1.0
"""A waiting run re-reads the lane at least this often (its owner's lease may expire)."""

OwnerAlive = Callable[[str, dict[str, Any]], Awaitable[bool]]
"""Whether the run a lane names (its id, the lane's value) is still alive."""
LaneSeen = tuple[dict[str, Any], int] | None


def lane_key(session_key: str) -> str:
    return f"lane.{kv_token(session_key)}"


def holder_alive(record: dict[str, Any] | None, lane: dict[str, Any]) -> bool:
    """Whether a lane's run is alive, judged by its record (None: not stored, or gone):
    the record's lease once it is stored, the lane's own lease until then. A lane from
    before lane leases (`{runId}` alone) whose record is gone is dead."""
    if record is None:
        return int(lane.get("leaseUntil", 0)) >= now_ms()
    return not is_terminal(record) and not lease_expired(record)


class Lanes:
    def __init__(self, kv: KeyValue, owner_alive: OwnerAlive) -> None:
        self.kv = kv
        self._owner_alive = owner_alive
        self._held: dict[str, int] = {}  # run id → revision of the lane it took

    async def peek(self, session_key: str) -> tuple[dict[str, Any], int] | None:
        """The lane as it is now (read ahead of `try_acquire`, alongside other reads)."""
        return await get_json(self.kv, lane_key(session_key))

    async def try_acquire(
        self,
        session_key: str,
        run_id: str,
        seen: LaneSeen | Literal[False] = False,
        *,
        lease_until: int = 0,
    ) -> bool:
        """Take the lane now if free. `seen`: what `peek` read (writes are compare-and-set
        on that version; when it changed since, the lane is read again). `lease_until`
        (epoch ms): how long others must believe this run alive while its record may not
        be stored yet (0 for a run whose record is stored already)."""
        key = lane_key(session_key)
        lane = {"runId": run_id, "leaseUntil": lease_until} if lease_until else {"runId": run_id}
        body = codec.dumps(lane)
        found = await get_json(self.kv, key) if seen is False else seen
        try:
            if found is None:
                self._held[run_id] = await self.kv.create(key, body)
                return True
            holder, revision = found
            owner = holder.get("runId")
            if owner == run_id:
                self._held[run_id] = revision
                return True
            if owner and await self._owner_alive(str(owner), holder):
                return False
            self._held[run_id] = await self.kv.update(key, body, last=revision)
            return True
        except KeyWrongLastSequenceError:
            if seen is not False:  # changed since `peek` (freed, maybe): look again
                return await self.try_acquire(session_key, run_id, lease_until=lease_until)
            return False  # another run got in first

    async def acquire(self, session_key: str, run_id: str) -> None:
        """Wait until this run owns the session's lane (cancel to give up)."""
        while not await self.try_acquire(session_key, run_id):
            watcher = await self.kv.watch(lane_key(session_key))
            try:
                # Wake when the lane is free (the first update is its current value), or
                # after RECHECK_S to see whether its owner's lease expired.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RECHECK_S):
                        async for entry in watcher:
                            if entry is not None and (
                                not is_value(entry) or not codec.loads(entry.value).get("runId")
                            ):
                                break
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()

    async def holds(self, session_key: str, run_id: str) -> bool:
        """Whether the lane names `run_id` now (read again)."""
        found = await get_json(self.kv, lane_key(session_key))
        return found is not None and found[0].get("runId") == run_id

    async def release(self, session_key: str, run_id: str) -> None:
        """Free the lane if this run holds it (kept as `{}` rather than deleted: a later
        take is then one compare-and-set instead of a create over a tombstone)."""
        key = lane_key(session_key)
        held = self._held.pop(run_id, None)
        if held is not None:
            try:
                await self.kv.update(key, b"{}", last=held)
                return
            except KeyWrongLastSequenceError:
                pass  # taken over meanwhile (we were thought dead): check whose it is
        found = await get_json(self.kv, key)
        if found is None or found[0].get("runId") != run_id:
            return
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self.kv.update(key, b"{}", last=found[1])
