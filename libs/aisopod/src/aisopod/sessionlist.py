"""`sessions.list` as a pure function over sessions held in memory, shared by the owner
(the runtime's `SessionStore`) and the edge (ws-gateway's `SessionIndex`), so both give the
same answer from the same entries (docs/ws-gateway.md, Reads at the edge).

A row is whatever a side keeps per session, as long as it has the fields the filters read:
`key`, `agentId`, `updatedAt` and the lower-cased text `search` looks in (`search_text`).
The order is newest `updatedAt` first, ties by key, so it does not depend on the order in
which a side learnt of its entries.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from typing import Protocol, TypeVar

from aisopod.catalogue.sessions import SessionEntry, SessionsListParams

LIST_MAX = 1000
"""Sessions answered when the caller gives no `limit` (the catalogue's own maximum)."""

SESSION_KEY_PREFIX = "s."
"""KV keys of the `sessions` bucket that hold a session (the runtime's `session_kv_key`)."""

_SEP = "\x00"


class Listed(Protocol):
    """What `select` reads of a row."""

    @property
    def key(self) -> str: ...

    @property
    def agent_id(self) -> str: ...

    @property
    def updated_at(self) -> int: ...

    @property
    def text(self) -> str:
        """`search_text` of the session."""
        ...

    def search_fields(self) -> tuple[str, str, str]:
        """The lower-cased key, label and last message, separately."""
        ...


Row = TypeVar("Row", bound=Listed)


def lowered_fields(entry: SessionEntry) -> tuple[str, str, str]:
    return entry.key.lower(), (entry.label or "").lower(), (entry.last_message or "").lower()


def search_text(entry: SessionEntry) -> str:
    """The three fields `search` looks in, lower-cased, in one string. NUL joins them: it is
    not a cased or case-ignorable character, so lower-casing the parts and the whole agree,
    and a needle without NUL matches the joined text exactly when it matches one part."""
    return _SEP.join(lowered_fields(entry))


def sort_key(row: Listed) -> tuple[int, str]:
    """`sessions.list`'s order: newest `updatedAt` first, then by key."""
    return -row.updated_at, row.key


def select(
    rows: Iterable[Row], params: SessionsListParams, now_ms: int, *, in_order: bool = False
) -> list[Row]:
    """The sessions `sessions.list` answers, in its order: `agentId` equal, updated within
    `activeMinutes` of `now_ms`, `search` (case-insensitive) in the key, label or last
    message; newest first; at most `limit` (else `LIST_MAX`). `in_order`: `rows` come
    sorted by `sort_key` already, so the first `limit` matches are the answer."""
    found: Iterable[Row] = rows
    if params.agent_id:
        agent_id = params.agent_id
        found = (r for r in found if r.agent_id == agent_id)
    if params.active_minutes:
        since = now_ms - params.active_minutes * 60_000
        found = (r for r in found if r.updated_at >= since)
    if params.search:
        needle = params.search.lower()
        if _SEP in needle:  # the joined text could match across two fields
            found = (r for r in found if any(needle in f for f in r.search_fields()))
        else:
            found = (r for r in found if needle in r.text)
    limit = params.limit or LIST_MAX
    if in_order:
        return list(itertools.islice(found, limit))
    return heapq.nsmallest(limit, found, key=sort_key)
