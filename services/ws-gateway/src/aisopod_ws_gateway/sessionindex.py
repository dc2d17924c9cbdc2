"""The `sessions` bucket at the edge: `sessions.list` (docs/ws-gateway.md, Reads at the
edge), OpenClaw's `health` and its `sessions.changed` feed (docs/openclaw.md).

The index follows the bucket with the same KV watch as the replicas (replica.KvReplica:
warm once it has applied everything stored when the watch began, resynced after a lost
watch). Per session it keeps a `Mark`: the key, agent id and `updatedAt` (what OpenClaw's
HealthSummary needs: counts per agent, the five most recent), and, while the bucket holds at
most `listed_max()` sessions (the live setting `gateway.sessionsListedMax`, 10,000 by
default), what `sessions.list` needs: the entry encoded as the owner encodes it (`wire`,
spliced into the reply) and the lower-cased text its `search` looks in (`text`). Filters
and order are the owner's own (`aisopod.sessionlist.select`). Each change after warm-up is
also handed to `on_change` with the entry as stored (None for a delete), so OpenClaw's
`sessions.changed` events come from the bucket itself.

Memory (measured, docs/ws-gateway.md): about 150 bytes per session for the marks, plus the
entry's encoded size and its search text (~0.3–0.8 KiB for a session with a full preview)
while listed. Past `listed_max()` sessions the listing parts are dropped (`sessions.list`
goes to the owner) until the bucket is back under 90 % of it, when the watch starts over to
read them again. Past `MAX_SESSIONS` the index drops everything and stays cold (the
HealthSummary then asks the owner, as before), trying again every minute.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aisopod import codec
from aisopod.catalogue.sessions import SessionEntry, SessionsListParams
from aisopod.replica import OVERFLOW_RETRY_S, KvReplica, OverBound
from aisopod.sessionlist import SESSION_KEY_PREFIX, search_text, select, sort_key

log = logging.getLogger("aisopod.ws.sessionindex")

MAX_SESSIONS = 100_000
MAX_LISTED = 10_000
RELIST_BELOW = 0.9
"""After an overflow, the listing is read again once the bucket is under this share of
the cap (and `OVERFLOW_RETRY_S` has passed): no restart per session around the cap."""
RECENT = 5

Changed = Callable[[str, dict[str, Any] | None], None]
"""(canonical session key, the stored entry or None when deleted)."""


@dataclass(slots=True)
class Mark:
    key: str
    agent_id: str
    updated_at: int
    text: str = ""
    """`aisopod.sessionlist.search_text` of the entry ("" while not listed)."""
    wire: bytes | None = None
    """The entry as the owner encodes it in `sessions.list` (None while not listed)."""

    def search_fields(self) -> tuple[str, str, str]:
        entry = orjson.loads(self.wire or b"{}")
        return (
            str(entry.get("key") or "").lower(),
            str(entry.get("label") or "").lower(),
            str(entry.get("lastMessage") or "").lower(),
        )


def _mark(stored: Any) -> Mark | None:
    if not isinstance(stored, dict) or not isinstance(stored.get("key"), str):
        return None
    updated_at = stored.get("updatedAt") or 0
    if not isinstance(updated_at, int | float):
        return None
    return Mark(stored["key"], str(stored.get("agentId")), int(updated_at))


class _Relist(Exception):
    """The bucket is back under the listing cap: read it again from a fresh watch."""


class SessionIndex(KvReplica):
    def __init__(
        self,
        kv: KeyValue,
        *,
        max_sessions: int = MAX_SESSIONS,
        listed_max: Callable[[], int] = lambda: MAX_LISTED,
    ) -> None:
        super().__init__("sessions", kv, SESSION_KEY_PREFIX, max_entries=max_sessions)
        self.listed_max = listed_max
        """The listing cap, read at each change (a live setting)."""
        self.marks: dict[str, Mark] = {}  # KV key → mark
        self.per_agent: dict[str, int] = {}
        self.on_change: Changed | None = None
        self.listed = True
        """Every mark carries its listing parts (False past `max_listed`)."""
        self.unlisted_at = 0.0
        self.unreadable: set[str] = set()
        """KV keys of entries the owner's model rejects: the owner answers while any exist."""
        self.ordered: list[Mark] = []
        """The listed marks in `sessions.list` order, kept sorted as they change: a read
        walks it and stops after `limit` matches (no sort per request)."""
        self._recent: tuple[int, list[Mark]] = (-1, [])

    @property
    def count(self) -> int:
        return len(self.marks)

    @property
    def listing(self) -> bool:
        """`sessions.list` can be answered here (a cap lowered below the count takes effect
        at once; the parts are dropped at the next change)."""
        return (
            self.warm
            and self.listed
            and not self.unreadable
            and len(self.marks) <= self.listed_max()
        )

    def recent(self) -> list[Mark]:
        """The most recently updated sessions, newest first (computed once per revision)."""
        revision, rows = self._recent
        if revision != self.revision:
            rows = heapq.nlargest(RECENT, self.marks.values(), key=lambda m: m.updated_at)
            self._recent = (self.revision, rows)
        return rows

    def list_body(self, params: SessionsListParams, now_ms: int) -> bytes | None:
        """The owner's reply body `{"result": {"sessions": [...]}}`, spliced from the kept
        entries; None when the listing is not held."""
        if not self.listing:
            return None
        chosen = select(self.ordered, params, now_ms, in_order=True)
        return b'{"result":{"sessions":[' + b",".join(m.wire or b"" for m in chosen) + b"]}}"

    def _reset(self) -> None:
        super()._reset()
        self.marks = {}
        self.per_agent = {}
        self.listed = True
        self.unreadable = set()
        self.ordered = []
        self._recent = (-1, [])

    async def _follow(self) -> None:
        try:
            await super()._follow()
        except _Relist:  # returning starts the watch over (`KvReplica._run`)
            log.info("sessions back under %d: reading the listing again", self.listed_max())

    def _apply(self, entry: KeyValue.Entry) -> None:
        self._revision = max(self._revision, entry.revision or 0)
        if not entry.key.startswith(self.prefix):
            return
        old = self.marks.pop(entry.key, None)
        if old is not None:
            self._count(old.agent_id, -1)
            if old.wire is not None:
                self._unorder(old)
        self.unreadable.discard(entry.key)
        stored: dict[str, Any] | None = None
        if entry.operation is None and entry.value is not None:
            try:
                stored = orjson.loads(entry.value)
            except orjson.JSONDecodeError:
                stored = None
            mark = _mark(stored)
            if mark is not None:
                assert isinstance(stored, dict)
                if self.listed:
                    self._list(entry.key, mark, stored)
                self.marks[entry.key] = mark
                self._count(mark.agent_id, 1)
            else:
                log.warning("unreadable session entry %s", entry.key)
                self.unreadable.add(entry.key)
                stored = None
        if len(self.marks) > self.max_entries:
            raise OverBound(f"{len(self.marks)} sessions")
        self._bound_listing()
        if self.warm and self.on_change is not None:
            key = stored["key"] if stored is not None else (old.key if old is not None else None)
            if key is not None:
                self.on_change(key, stored)

    def _list(self, kv_key: str, mark: Mark, stored: dict[str, Any]) -> None:
        """Give `mark` its listing parts, encoded as the owner's `sessions.list` does."""
        try:
            session = SessionEntry.model_validate(stored)
        except ValidationError:
            log.warning("session entry %s does not match the owner's model", kv_key)
            self.unreadable.add(kv_key)
            return
        mark.agent_id, mark.updated_at = session.agent_id, session.updated_at
        mark.text = search_text(session)
        # A copy at its own size: orjson's output keeps its whole (4 KiB) working buffer.
        mark.wire = bytes(memoryview(codec.dumps(codec.to_wire(session))))
        bisect.insort(self.ordered, mark, key=sort_key)

    def _unorder(self, mark: Mark) -> None:
        at = bisect.bisect_left(self.ordered, sort_key(mark), key=sort_key)
        while at < len(self.ordered) and self.ordered[at] is not mark:
            at += 1  # the same place in the order as another entry (a key stored twice)
        if at < len(self.ordered):
            del self.ordered[at]

    def _bound_listing(self) -> None:
        cap = self.listed_max()
        if self.listed and len(self.marks) > cap:
            log.warning("more than %d sessions: sessions.list goes to the owner", cap)
            self.listed = False
            self.unlisted_at = time.monotonic()
            for mark in self.marks.values():
                mark.text, mark.wire = "", None
            self.ordered = []
        elif (
            not self.listed
            and len(self.marks) <= cap * RELIST_BELOW
            and time.monotonic() - self.unlisted_at >= OVERFLOW_RETRY_S
        ):
            raise _Relist

    def _count(self, agent_id: str, delta: int) -> None:
        left = self.per_agent.get(agent_id, 0) + delta
        if left > 0:
            self.per_agent[agent_id] = left
        else:
            self.per_agent.pop(agent_id, None)
