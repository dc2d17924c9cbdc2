"""In-memory replicas of KV state for reads at the edge (ws-gateway and http-api:
docs/ws-gateway.md, Reads at the edge; docs/http-api.md, Reads at the edge).

`KvReplica` keeps the live entries of one bucket whose keys start with a prefix, from a
KV watch on every key of the bucket (so `revision`, the stream sequence of the last
message applied, follows the whole bucket and can be compared with the bucket's last
sequence for read-your-writes). With `keep_values=False` it keeps the keys only (a
headers-only watch: the values never cross the wire), for reads that only count. With
`ttl_s` (a bucket whose entries expire by age, which a watch does not announce) it keeps
each key's write time, so `live_count` counts what the server still holds.
`ConfigReplica` gives the same interface over the configuration this process already
watches and runs on. `catch_up` is the read-your-writes wait both edges use.

Memory is bounded: past `max_entries` kept keys or `max_bytes` of kept values a replica
drops its copy and stays cold (its reads go to the owner), trying again every
`OVERFLOW_RETRY_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from nats.js.kv import KeyValue

from aisopod.config.watcher import ConfigWatcher

log = logging.getLogger("aisopod.replica")

RETRY_S = 0.5
OVERFLOW_RETRY_S = 60.0  # a bucket over the bound is tried again this often
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class OverBound(Exception):
    """The bucket holds more than the replica may keep (a subclass raises it from `apply`)."""


class Replica(Protocol):
    name: str

    @property
    def warm(self) -> bool: ...

    @property
    def revision(self) -> int: ...

    async def last_revision(self) -> int:
        """The bucket's newest stream sequence, asked of the server (one round trip)."""
        ...

    async def wait_for(self, revision: int, timeout: float) -> bool:
        """True once the replica has applied `revision` (or later) within `timeout`."""
        ...


async def _bucket_last_sequence(kv: KeyValue) -> int:
    status = await kv.status()
    return status.stream_info.state.last_seq


class KvReplica:
    def __init__(
        self,
        name: str,
        kv: KeyValue,
        prefix: str,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        keep_values: bool = True,
        ttl_s: float | None = None,
    ) -> None:
        self.name = name
        self.kv = kv
        self.prefix = prefix
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.keep_values = keep_values
        self.ttl_s = ttl_s
        self.entries: dict[str, bytes] = {}
        # Write time (epoch seconds) per kept key, only with `ttl_s`.
        self.written_at: dict[str, float] = {}
        self.size = 0
        self._revision = 0
        self._warm = False
        self.overflow = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def warm(self) -> bool:
        return self._warm and not self.overflow

    @property
    def revision(self) -> int:
        return self._revision

    async def start(self) -> None:
        """Follow the bucket (again, after a `stop`: from a fresh snapshot)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"replica-{self.name}")

    async def stop(self) -> None:
        """Stop following the bucket and drop the copy: a stopped replica is cold."""
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            # nats-py's watcher may swallow one cancellation; never hang a shutdown on it.
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
            self._reset()

    async def last_revision(self) -> int:
        return await _bucket_last_sequence(self.kv)

    def live_count(self, now_s: float | None = None) -> int:
        """Kept keys the server still holds: all of them, or with `ttl_s` those written
        within it."""
        if self.ttl_s is None:
            return len(self.entries)
        oldest = (time.time() if now_s is None else now_s) - self.ttl_s
        return sum(1 for stamp in self.written_at.values() if stamp > oldest)

    async def wait_for(self, revision: int, timeout: float) -> bool:
        if self.warm and self._revision >= revision:
            return True

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.warm and self._revision >= revision)

        try:
            await asyncio.wait_for(reached(), timeout)
            return True
        except TimeoutError:
            return False

    async def _run(self) -> None:
        # A task that outlived its `stop` (a swallowed cancellation) ends at the next turn.
        while not self._stopping and self._task is asyncio.current_task():
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except OverBound as exc:
                log.warning("replica of %s over its bound (%s): owner reads", self.name, exc)
                self._reset()
                self.overflow = True
                await asyncio.sleep(OVERFLOW_RETRY_S)
            except Exception:  # NATS restart: start over from a fresh snapshot
                log.warning("watch of %s interrupted; resyncing", self.name, exc_info=True)
                self._reset()
                await asyncio.sleep(RETRY_S)

    def _reset(self) -> None:
        self.entries.clear()
        self.written_at.clear()
        self.size = 0
        self._revision = 0
        self._warm = False

    async def _follow(self) -> None:
        self._reset()
        # Warm only once everything stored when the watch began is in: nats-py's end-of-
        # snapshot marker can come early under load (aisopod.jsread says more).
        start_target = await self.last_revision()
        watcher = await self.kv.watch(">", meta_only=not self.keep_values)
        try:
            async for entry in watcher:
                if entry is None:
                    if not self._warm and self._revision < start_target:
                        state = (await self.kv.status()).stream_info.state
                        if state.messages == 0:
                            start_target = 0
                    await self._mark(start_target)
                    continue
                self._apply(entry)
                await self._mark(start_target)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _apply(self, entry: KeyValue.Entry) -> None:
        self._revision = max(self._revision, entry.revision or 0)
        key = entry.key
        if not key.startswith(self.prefix):
            return
        old = self.entries.pop(key, None)
        self.written_at.pop(key, None)
        if old is not None:
            self.size -= len(old)
        if entry.operation is None and entry.value is not None:
            value = entry.value if self.keep_values else b""
            self.entries[key] = value
            self.size += len(value)
            if self.ttl_s is not None:
                # A datetime (the stored time), whatever nats-py's type hint says.
                stamp_of = getattr(entry.created, "timestamp", None)
                self.written_at[key] = stamp_of() if callable(stamp_of) else time.time()
        if len(self.entries) > self.max_entries or self.size > self.max_bytes:
            raise OverBound(f"{len(self.entries)} entries, {self.size} bytes")

    async def _mark(self, start_target: int) -> None:
        if not self._warm and self._revision >= start_target:
            self._warm = True
            self.overflow = False
        async with self._changed:
            self._changed.notify_all()


class ConfigReplica:
    """The configuration this process runs on, as a replica: always warm once started."""

    name = "config"

    def __init__(self, watcher: ConfigWatcher) -> None:
        self.watcher = watcher

    @property
    def warm(self) -> bool:
        return True

    @property
    def revision(self) -> int:
        return self.watcher.snapshot.revision

    async def last_revision(self) -> int:
        return await _bucket_last_sequence(self.watcher.store.kv)

    async def wait_for(self, revision: int, timeout: float) -> bool:
        return await self.watcher.wait_for_revision(revision, timeout)


async def catch_up(replicas: Iterable[Replica], timeout: float) -> bool:
    """Read-your-writes: each replica first asks its bucket's newest sequence, then waits
    (at most `timeout`) until it has applied it. False when one did not (read the owner)."""
    for replica in replicas:
        try:
            target = await replica.last_revision()
            if not await replica.wait_for(target, timeout):
                return False
        except Exception:
            log.warning("read-your-writes sync of %s failed", replica.name, exc_info=True)
            return False
    return True
