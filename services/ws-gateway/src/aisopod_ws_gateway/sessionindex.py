"""A lean index of the `sessions` bucket at the edge (docs/openclaw.md, Health at the edge).

Not a replica: `sessions.list` stays with the owner (docs/ws-gateway.md says why). The index
follows the bucket with the same KV watch as the replicas (replica.KvReplica: warm once it
has applied everything stored when the watch began, resynced after a lost watch) but keeps,
per session, only its agent id and `updatedAt`: what OpenClaw's HealthSummary needs (counts
per agent, the five most recent) and nothing a session says. Each change after warm-up is
also handed to `on_change` with the entry as stored (None for a delete), so OpenClaw's
`sessions.changed` events come from the bucket itself.

Memory: about 150 bytes per session; past `MAX_SESSIONS` the index drops its copy and stays
cold (the HealthSummary then asks the owner, as before), trying again every minute.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.js.kv import KeyValue

from aisopod.replica import KvReplica, OverBound

log = logging.getLogger("aisopod.ws.sessionindex")

SESSION_KEY_PREFIX = "s."
MAX_SESSIONS = 100_000
RECENT = 5

Changed = Callable[[str, dict[str, Any] | None], None]
"""(canonical session key, the stored entry or None when deleted)."""


@dataclass(frozen=True, slots=True)
class Mark:
    key: str
    agent_id: str
    updated_at: int


class SessionIndex(KvReplica):
    def __init__(self, kv: KeyValue, *, max_sessions: int = MAX_SESSIONS) -> None:
        super().__init__("sessions", kv, SESSION_KEY_PREFIX, max_entries=max_sessions)
        self.marks: dict[str, Mark] = {}  # KV key → mark
        self.per_agent: dict[str, int] = {}
        self.on_change: Changed | None = None
        self._recent: tuple[int, list[Mark]] = (-1, [])

    @property
    def count(self) -> int:
        return len(self.marks)

    def recent(self) -> list[Mark]:
        """The most recently updated sessions, newest first (computed once per revision)."""
        revision, rows = self._recent
        if revision != self.revision:
            rows = heapq.nlargest(RECENT, self.marks.values(), key=lambda m: m.updated_at)
            self._recent = (self.revision, rows)
        return rows

    def _reset(self) -> None:
        super()._reset()
        self.marks = {}
        self.per_agent = {}
        self._recent = (-1, [])

    def _apply(self, entry: KeyValue.Entry) -> None:
        self._revision = max(self._revision, entry.revision or 0)
        if not entry.key.startswith(self.prefix):
            return
        old = self.marks.pop(entry.key, None)
        if old is not None:
            self._count(old.agent_id, -1)
        stored: dict[str, Any] | None = None
        if entry.operation is None and entry.value is not None:
            try:
                stored = orjson.loads(entry.value)
            except orjson.JSONDecodeError:
                stored = None
            if isinstance(stored, dict) and isinstance(stored.get("key"), str):
                mark = Mark(
                    stored["key"], str(stored.get("agentId")), int(stored.get("updatedAt") or 0)
                )
                self.marks[entry.key] = mark
                self._count(mark.agent_id, 1)
            else:
                log.warning("unreadable session entry %s", entry.key)
                stored = None
        if len(self.marks) > self.max_entries:
            raise OverBound(f"{len(self.marks)} sessions")
        if self.warm and self.on_change is not None:
            key = stored["key"] if stored is not None else (old.key if old is not None else None)
            if key is not None:
                self.on_change(key, stored)

    def _count(self, agent_id: str, delta: int) -> None:
        left = self.per_agent.get(agent_id, 0) + delta
        if left > 0:
            self.per_agent[agent_id] = left
        else:
            self.per_agent.pop(agent_id, None)
