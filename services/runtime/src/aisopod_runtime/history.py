"""A per-process cache of each session's transcript tail, so a read costs O(new messages).

An entry holds `(stream sequence, raw message)` for a contiguous run of the session's newest
messages as of its `last_seq`, and whether that run starts at the subject's first message
(`complete`). A read brings the entry up to date, then serves the last `limit` from it:

1. extend: a pull consumer on the session's subject from `last_seq + 1` (O(new messages));
2. validate, after the extension: the subject's first message at or after the entry's
   oldest sequence (one `STREAM.MSG.GET`). If it is that oldest message, nothing the entry
   holds was removed; if it is a later one the entry holds, the stream's limits dropped the
   older ones and the entry is trimmed to it; anything else (gone, or newer than all we
   read) means the subject was purged (`sessions.reset` / `sessions.delete`) and the entry
   is read again from the stream.

Why the subject's first sequence and not an epoch in the session's KV record: it lives in
the very stream read, so it needs no cooperation from writers (another replica, an older
runtime), it also sees the stream's own limits dropping old messages (no epoch changes
then), and there is no window between a purge and an epoch write. It relies on what the
stream allows here: writers only append, a purge removes the whole subject, limits drop
oldest first — removal is always a prefix, never a hole. Because removed messages never
come back and the check runs after the extension, a passing check proves every cached
message still existed when the extension read the new ones: the result is the subject as
it was at that moment, as a full read would have given.

Bounds: an entry keeps at most the largest `limit` asked of it (historyLimit + 1 for a
turn, chat.history's ≤ 1000); all entries together at most `max_sessions` (LRU) and
`max_bytes` of raw message data (LRU; a session whose tail alone exceeds it is not cached
and is read in full as before). A cold read (first after start or eviction) is a full read.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from aisopod import codec
from aisopod.jsread import consume_all

MAX_SESSIONS = 512
MAX_BYTES = 32 * 1024 * 1024
ITEM_OVERHEAD = 100
"""Bytes counted per cached message beyond its data (the tuple, the bytes object)."""


@dataclass(slots=True)
class Tail:
    """One session's newest messages: `(stream sequence, raw JSON)`, oldest first."""

    items: deque[tuple[int, bytes]]
    last_seq: int
    keep: int
    complete: bool
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add(self, seq: int, data: bytes) -> None:
        self.items.append((seq, data))
        self.size += len(data) + ITEM_OVERHEAD
        self.last_seq = max(self.last_seq, seq)
        while len(self.items) > self.keep:
            _, dropped = self.items.popleft()
            self.size -= len(dropped) + ITEM_OVERHEAD
            self.complete = False

    def trim_before(self, seq: int) -> None:
        """Drop what the stream's limits removed: messages older than `seq`."""
        while self.items and self.items[0][0] < seq:
            _, dropped = self.items.popleft()
            self.size -= len(dropped) + ITEM_OVERHEAD

    def last(self, limit: int) -> list[dict[str, Any]]:
        start = max(0, len(self.items) - limit)
        return [codec.loads(data) for _, data in list(self.items)[start:]]


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    evictions: int = 0


class TranscriptCache:
    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        *,
        max_sessions: int = MAX_SESSIONS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.js = js
        self.stream = stream
        self.max_sessions = max_sessions
        self.max_bytes = max_bytes
        self.tails: OrderedDict[str, Tail] = OrderedDict()
        self.stats = CacheStats()

    @property
    def size(self) -> int:
        return sum(t.size for t in self.tails.values())

    async def read(self, subject: str, limit: int) -> list[dict[str, Any]]:
        """The last `limit` messages on `subject`, oldest first (as a full read gives)."""
        tail = self.tails.get(subject)
        if tail is None:
            tail = Tail(deque(), 0, limit, complete=False)
            self.tails[subject] = tail
        self.tails.move_to_end(subject)
        async with tail.lock:
            if tail.items and (tail.complete or len(tail.items) >= limit):
                tail.keep = max(tail.keep, limit)
                if await self._refresh(subject, tail):
                    self.stats.hits += 1
                    result = tail.last(limit)
                    self._bound(subject)
                    return result
                self.stats.invalidations += 1
            else:
                self.stats.misses += 1
            await self._load(subject, tail, max(tail.keep, limit))
            result = tail.last(limit)
            self._bound(subject)
            return result

    def forget(self, subject: str) -> None:
        """Drop a session's entry (a courtesy on purge: validation catches it anyway)."""
        self.tails.pop(subject, None)

    async def _load(self, subject: str, tail: Tail, keep: int) -> None:
        """A full read of the subject's last `keep` messages (one more tells completeness)."""
        messages = await consume_all(self.js, self.stream, subject, limit=keep + 1)
        tail.items.clear()
        tail.size = 0
        tail.keep = keep
        tail.last_seq = 0
        tail.complete = True
        for msg in messages:
            tail.add(msg.metadata.sequence.stream, msg.data)

    async def _refresh(self, subject: str, tail: Tail) -> bool:
        """Bring `tail` up to date; False when the subject was purged under it."""
        new = await consume_all(self.js, self.stream, subject, start_seq=tail.last_seq + 1)
        read = [(m.metadata.sequence.stream, m.data) for m in new]
        oldest = tail.items[0][0]
        try:
            first = await self.js.get_msg(self.stream, seq=oldest, subject=subject, next=True)
        except NotFoundError:
            return False
        front = first.seq or 0
        held = next((data for seq, data in tail.items if seq == front), None)
        # Compared by content too: a stream deleted and made again numbers from 1 anew.
        if held is None or held != first.data:
            # Not a message we hold: only a purge (or a new stream) removes all we hold.
            return False
        if front != oldest:
            # The stream's limits dropped our oldest, so also every older message of the
            # subject (removal is a prefix): what remains from `front` on is all there is.
            tail.trim_before(front)
            tail.complete = True
        for seq, data in read:
            tail.add(seq, data)  # past `keep`, the oldest go (and completeness with them)
        return True

    def _bound(self, current: str) -> None:
        """Evict least recently used entries past the session and byte bounds.

        An evicted entry still being read stays consistent for its reader (it holds the
        entry and its lock); the next read of that session starts a fresh one.
        """
        mine = self.tails.get(current)
        if mine is not None and mine.size > self.max_bytes:  # alone too big: not cached
            self.tails.pop(current)
            self.stats.evictions += 1
        total = self.size
        while len(self.tails) > self.max_sessions or total > self.max_bytes:
            subject, tail = next(iter(self.tails.items()))
            if subject == current:  # the one just read goes last
                self.tails.move_to_end(subject)
                subject, tail = next(iter(self.tails.items()))
            self.tails.pop(subject)
            total -= tail.size
            self.stats.evictions += 1
