"""Sessions: keys `agent:<agentId>:<name>`, metadata in KV `sessions`.

Keys in the short form name a session of the default agent (`aisopod.sessionkey`); every
method answers and broadcasts with the canonical key. An entry is created by the first
message (`chat.send`, `sessions.send`, `agent`); `lastMessage` is a short preview.
The transcript itself lives in stream TRANSCRIPTS (transcripts.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.sessions import SessionEntry, SessionsListParams, SessionsPatchParams
from aisopod.errors import Conflict, NotFound
from aisopod.jsread import snapshot
from aisopod_runtime.kvview import get_json, kv_token

PREVIEW_CHARS = 200
LIST_MAX = 1000


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


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

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

    async def create(self, session_key: str, agent_id: str) -> Seen:
        """A new session's entry; the existing one when another writer created it first."""
        body = {
            "key": session_key,
            "agentId": agent_id,
            "updatedAt": now_ms(),
            "createdAt": now_ms(),
        }
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
            return SessionEntry.model_validate(body)
        raise Conflict("the session changed concurrently; retry", code="CONCURRENT_UPDATE")

    async def touch(
        self,
        session_key: str,
        agent_id: str,
        last_message: str | None,
        known: Seen | None = None,
    ) -> None:
        changes = {"lastMessage": preview(last_message)} if last_message else {}
        await self.change(session_key, agent_id, changes, known=known)

    async def patch(self, params: SessionsPatchParams, agent_id: str, key: str) -> SessionEntry:
        """Change an existing session; sessions are created by their first message."""
        changes = {k: v for k, v in params.wire().items() if k != "key"}
        return await self.change(key, agent_id, changes, create=False)

    async def delete(self, session_key: str) -> None:
        await self.kv.delete(session_kv_key(session_key))

    async def all(self) -> list[SessionEntry]:
        return [
            SessionEntry.model_validate(codec.loads(e.value))
            for e in await snapshot(self.kv, "s.>")
            if e.value is not None
        ]

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
        entries = await self.all()
        if params.agent_id:
            entries = [e for e in entries if e.agent_id == params.agent_id]
        if params.active_minutes:
            since = now_ms() - params.active_minutes * 60_000
            entries = [e for e in entries if e.updated_at >= since]
        if params.search:
            needle = params.search.lower()
            entries = [
                e
                for e in entries
                if needle in e.key.lower()
                or needle in (e.label or "").lower()
                or needle in (e.last_message or "").lower()
            ]
        entries.sort(key=lambda e: e.updated_at, reverse=True)
        return entries[: params.limit or LIST_MAX]
