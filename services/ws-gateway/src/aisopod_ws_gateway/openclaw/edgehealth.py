"""OpenClaw's `health` (a HealthSummary) answered at the edge, as `/ws` answers `health`.

The summary is built from what this process already holds: the cached health snapshot
(health.py), the `agents` replica and the configured default agent (edgereads.py), the
sessions index (sessionindex.py) and the configured heartbeats. It is encoded once and
reused while none of them changed and for at most `MAX_AGE_S`, so a request costs a look-up
and a splice. Staleness: counts and agents follow the KV watches (milliseconds), the
services the 5 s health snapshot as on `/ws`, and the sessions' `age` may be up to
`MAX_AGE_S` old. None (ask the owner, the adapter row's own path) while a part is cold: a
replica warming up or over its bound, or the default agent not stored yet. A connection
that got such an owner's answer takes the row's path once more when the parts are warm:
its `agents.list` and `sessions.list` catch up with their buckets first (edgereads.py), so
its next summary is never older than the owner's (monotonic reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from aisopod import codec
from aisopod_ws_gateway.openclaw.adapters import (
    NO_HEARTBEATS,
    Heartbeats,
    SessionCounts,
    health_shape,
)
from aisopod_ws_gateway.sessionindex import SessionIndex

MAX_AGE_S = 1.0

Agents = Callable[[], tuple[Any, dict[str, Any]] | None]
"""`agents.list`'s answer (wire data) with a revision naming it, or None when cold."""


class EdgeHealth:
    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        agents: Agents,
        sessions: SessionIndex,
        heartbeats: Heartbeats = lambda: NO_HEARTBEATS,
        use_sessions: Callable[[], object] = lambda: None,
        buckets: frozenset[str] = frozenset(),
    ) -> None:
        """`use_sessions`: called on each read (the index runs only while read);
        `buckets`: the KV buckets its parts follow (a connection the owner answered about
        them first catches up, as every edge read does)."""
        self.buckets = buckets
        self.snapshot = snapshot
        self.use_sessions = use_sessions
        self.agents = agents
        self.sessions = sessions
        self.heartbeats = heartbeats
        self._key: tuple[Any, ...] | None = None
        self._built_at = 0.0
        self._body = b""

    def body(self) -> bytes | None:
        """`{"result": <HealthSummary>}`, or None when a part is cold."""
        self.use_sessions()
        sessions = self.sessions
        if not sessions.warm:
            return None
        listed = self.agents()
        if listed is None:
            return None
        ours = self.snapshot()
        heartbeats = self.heartbeats()
        key = (ours.get("ts"), listed[0], sessions.revision, id(heartbeats))
        now = time.monotonic()
        if key != self._key or now - self._built_at > MAX_AGE_S:
            self._body = codec.dumps({"result": self._build(ours, listed[1], heartbeats)})
            self._key, self._built_at = key, now
        return self._body

    def _build(
        self, ours: dict[str, Any], agents: dict[str, Any], heartbeats: Mapping[str, dict[str, Any]]
    ) -> dict[str, Any]:
        now = int(time.time() * 1000)
        index = self.sessions
        recent = [
            {"key": m.key, "updatedAt": m.updated_at, "age": max(0, now - m.updated_at)}
            for m in index.recent()
        ]
        counts = SessionCounts(index.count, dict(index.per_agent), recent)
        return health_shape(
            ours,
            str(agents.get("defaultId")),
            list(agents.get("agents") or []),
            counts,
            0,
            heartbeats,
        )
