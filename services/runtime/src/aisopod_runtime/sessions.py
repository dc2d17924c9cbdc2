"""Sessions: keys `agent:<agentId>:<name>`, metadata in KV `sessions`.

Keys in the short form name a session of the default agent (`aisopod.sessionkey`); every
method answers and broadcasts with the canonical key. An entry is created by the first
message (`chat.send`, `sessions.send`, `agent`); `lastMessage` is a short preview.
The transcript itself lives in stream TRANSCRIPTS (transcripts.py).

`sessions.list` and label look-ups read the bucket from memory: `SessionMemory` follows it
with a KV watch (aisopod.replica: warm once it holds everything stored when the watch
began, resynced after a lost watch, dropped past its bound). While it is cold or over its
bound they read the whole bucket as before. The copy is kept only while such reads come:
the first one starts it (and reads the bucket itself), and it is dropped after
`MEMORY_IDLE_S` without one, so that a runtime nobody asks for every session does not
receive every session write (two per agent turn). Every write finished before a read is visible
to it, whichever runtime instance made it: a read first asks the bucket's last sequence and
waits (at most `SYNC_WAIT_S`) until the watch has applied it (`aisopod.replica.catch_up`),
else reads the bucket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.sessions import SessionEntry, SessionsListParams, SessionsPatchParams
from aisopod.errors import Conflict, NotFound
from aisopod.jsread import snapshot
from aisopod.ondemand import OnDemand
from aisopod.replica import KvReplica, OverBound, catch_up
from aisopod.sessionlist import SESSION_KEY_PREFIX, lowered_fields, search_text, select
from aisopod_runtime.kvview import get_json, kv_token

log = logging.getLogger("aisopod.runtime.sessions")

PREVIEW_CHARS = 200
SYNC_WAIT_S = 1.0
"""How long a read waits for the watch to apply the bucket's last sequence."""
MEMORY_MAX_SESSIONS = 20_000
MEMORY_MAX_BYTES = 32 * 1024 * 1024
"""The in-memory copy's bound (sessions, bytes of stored values); past it reads go to KV."""
MEMORY_IDLE_S = 300.0
"""The in-memory copy is dropped (its watch stopped) after this long without a read."""


def session_kv_key(session_key: str) -> str:
    return f"s.{kv_token(session_key)}"


def preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Seen:
    """A session entry as read (or written) at `revision`."""

    entry: SessionEntry
    body: dict[str, Any]
    revision: int
    raced: bool = False
    """Created by another writer while we tried to create it."""


@dataclass(slots=True)
class Held:
    """A session as the in-memory copy keeps it (an `aisopod.sessionlist` row)."""

    entry: SessionEntry
    text: str

    @classmethod
    def of(cls, entry: SessionEntry) -> Held:
        return cls(entry, search_text(entry))

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def agent_id(self) -> str:
        return self.entry.agent_id

    @property
    def updated_at(self) -> int:
        return self.entry.updated_at

    def search_fields(self) -> tuple[str, str, str]:
        return lowered_fields(self.entry)


class SessionMemory(KvReplica):
    """The `sessions` bucket as parsed entries, kept by a KV watch."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        max_entries: int = MEMORY_MAX_SESSIONS,
        max_bytes: int = MEMORY_MAX_BYTES,
    ) -> None:
        super().__init__(
            "sessions", kv, SESSION_KEY_PREFIX, max_entries=max_entries, max_bytes=max_bytes
        )
        self.held: dict[str, Held] = {}  # KV key → session
        self.sizes: dict[str, int] = {}

    def _reset(self) -> None:
        super()._reset()
        self.held = {}
        self.sizes = {}

    def _apply(self, entry: KeyValue.Entry) -> None:
        self._revision = max(self._revision, entry.revision or 0)
        key = entry.key
        if not key.startswith(self.prefix):
            return
        self.held.pop(key, None)
        self.size -= self.sizes.pop(key, 0)
        if entry.operation is None and entry.value is not None:
            try:
                session = SessionEntry.model_validate(codec.loads(entry.value))
            except ValueError:  # as the bucket read would: such an entry fails the read
                log.warning("unreadable session entry %s", key)
                raise OverBound(f"unreadable entry {key}") from None
            self.held[key] = Held.of(session)
            self.sizes[key] = len(entry.value)
            self.size += len(entry.value)
        if len(self.held) > self.max_entries or self.size > self.max_bytes:
            raise OverBound(f"{len(self.held)} sessions, {self.size} bytes")


class SessionStore:
    def __init__(
        self,
        kv: KeyValue,
        *,
        memory_idle_s: float = MEMORY_IDLE_S,
        memory_max_sessions: int = MEMORY_MAX_SESSIONS,
    ) -> None:
        self.kv = kv
        self.memory_max_sessions = memory_max_sessions
        self._memory_on = False
        # The copy runs only while reads of every session come (aisopod.ondemand).
        self.memory_demand: OnDemand[SessionMemory] = OnDemand(
            "session-memory", self._start_memory, SessionMemory.stop, idle_s=memory_idle_s
        )

    @property
    def memory(self) -> SessionMemory | None:
        """The running copy (None while none runs, or while one starts)."""
        return self.memory_demand.part

    async def start(self) -> None:
        """Reads of every session may keep a copy in memory from now on (`_memory`)."""
        self._memory_on = True

    async def stop(self) -> None:
        self._memory_on = False
        await self.memory_demand.close()

    def _memory(self) -> SessionMemory | None:
        """The copy in memory for a read of every session, started by the first such read
        (which reads the bucket itself meanwhile) and kept while reads come."""
        return self.memory_demand.use() if self._memory_on else None

    async def _start_memory(self) -> SessionMemory:
        memory = SessionMemory(self.kv, max_entries=self.memory_max_sessions)
        await memory.start()
        return memory

    async def get(self, session_key: str) -> SessionEntry | None:
        found = await get_json(self.kv, session_kv_key(session_key))
        return SessionEntry.model_validate(found[0]) if found else None

    async def require(self, session_key: str) -> SessionEntry:
        entry = await self.get(session_key)
        if entry is None:
            raise NotFound(f"no session {session_key!r}", code="SESSION_NOT_FOUND")
        return entry

    async def ensure(self, session_key: str, agent_id: str) -> SessionEntry:
        """The entry, created when the session is new."""
        found = await self.lookup(session_key)
        if found is None:
            found = await self.create(session_key, agent_id)
        return found.entry

    async def lookup(self, session_key: str) -> Seen | None:
        """The entry with the version read (a later change may start from it)."""
        found = await get_json(self.kv, session_kv_key(session_key))
        return Seen(SessionEntry.model_validate(found[0]), *found) if found else None

    async def create(self, session_key: str, agent_id: str, title: str | None = None) -> Seen:
        """A new session's entry (with the title of the message that creates it); the
        existing one when another writer created it first."""
        body: dict[str, Any] = {
            "key": session_key,
            "agentId": agent_id,
            "updatedAt": now_ms(),
            "createdAt": now_ms(),
        }
        if title is not None:
            body["title"] = title
        try:
            revision = await self.kv.create(session_kv_key(session_key), codec.dumps(body))
        except KeyWrongLastSequenceError:
            found = await self.lookup(session_key)
            if found is None:
                raise NotFound(f"no session {session_key!r}", code="SESSION_NOT_FOUND") from None
            found.raced = True
            return found
        return Seen(SessionEntry.model_validate(body), body, revision)

    async def change(
        self,
        session_key: str,
        agent_id: str,
        changes: dict[str, Any],
        *,
        known: Seen | None = None,
        create: bool = True,
    ) -> SessionEntry:
        """Apply `changes` (wire names; None clears) by compare-and-set, creating the entry
        (or SESSION_NOT_FOUND when `create` is false).

        `known` is a version read earlier: tried first, so an unchanged entry costs one
        round trip; the entry is read again only when it changed since.
        """
        return SessionEntry.model_validate(
            await self._change(session_key, agent_id, changes, known=known, create=create)
        )

    async def _change(
        self,
        session_key: str,
        agent_id: str,
        changes: dict[str, Any],
        *,
        known: Seen | None = None,
        create: bool = True,
    ) -> dict[str, Any]:
        """`change`, answering the entry as written (not parsed: the touch at the end of
        every turn has no use for it)."""
        for _ in range(8):
            if known is not None:
                found: tuple[dict[str, Any], int] | None = (dict(known.body), known.revision)
                known = None
            else:
                found = await get_json(self.kv, session_kv_key(session_key))
            if found is None:
                if not create:
                    raise NotFound(f"no session {session_key!r}", code="SESSION_NOT_FOUND")
                body: dict[str, Any] = {
                    "key": session_key,
                    "agentId": agent_id,
                    "createdAt": now_ms(),
                }
                revision = 0
            else:
                body, revision = found
            for name, value in changes.items():
                if value is None:
                    body.pop(name, None)
                else:
                    body[name] = value
            body["updatedAt"] = now_ms()
            data = codec.dumps(body)
            try:
                if revision:
                    await self.kv.update(session_kv_key(session_key), data, last=revision)
                else:
                    await self.kv.create(session_kv_key(session_key), data)
            except KeyWrongLastSequenceError:
                continue
            return body
        raise Conflict("the session changed concurrently; retry", code="CONCURRENT_UPDATE")

    async def touch(
        self,
        session_key: str,
        agent_id: str,
        last_message: str | None,
        known: Seen | None = None,
        title: str | None = None,
    ) -> None:
        """A run or an injected message changed the session: its preview (and the title a
        session without one gets from its first user message)."""
        changes = {"lastMessage": preview(last_message)} if last_message else {}
        if title is not None:
            changes["title"] = title
        await self._change(session_key, agent_id, changes, known=known)

    async def patch(self, params: SessionsPatchParams, agent_id: str, key: str) -> SessionEntry:
        """Change an existing session; sessions are created by their first message."""
        changes = {k: v for k, v in params.wire().items() if k != "key"}
        return await self.change(key, agent_id, changes, create=False)

    async def delete(self, session_key: str) -> None:
        await self.kv.delete(session_kv_key(session_key))

    async def _held(self) -> Iterable[Held]:
        """Every session: from memory when it is warm and holds everything the bucket held
        when asked (its last sequence: one round trip, so a write another runtime replica
        finished before this read is seen too), else read from the bucket."""
        memory = self._memory()
        if memory is not None and memory.warm and await catch_up((memory,), SYNC_WAIT_S):
            return list(memory.held.values())
        return [
            Held.of(SessionEntry.model_validate(codec.loads(e.value)))
            for e in await snapshot(self.kv, SESSION_KEY_PREFIX + ">")
            if e.value is not None
        ]

    async def all(self) -> list[SessionEntry]:
        return [h.entry for h in await self._held()]

    async def labelled(self, label: str, agent_id: str | None) -> list[SessionEntry]:
        """Sessions whose label equals `label`, ignoring case and outer spaces, newest first."""
        wanted = label.strip().casefold()
        found = [
            e
            for e in await self.all()
            if (e.label or "").strip().casefold() == wanted
            and (agent_id is None or e.agent_id == agent_id)
        ]
        found.sort(key=lambda e: e.updated_at, reverse=True)
        return found

    async def list(self, params: SessionsListParams) -> list[SessionEntry]:
        return [h.entry for h in select(await self._held(), params, now_ms())]
