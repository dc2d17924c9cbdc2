"""`sessions.list`'s filters and order (aisopod.sessionlist), without a bus: the function
the owner and the edge both answer with."""

from __future__ import annotations

from dataclasses import dataclass

from aisopod.catalogue.sessions import SessionEntry, SessionsListParams
from aisopod.sessionlist import LIST_MAX, lowered_fields, search_text, select

NOW = 10_000_000_000


@dataclass
class Row:
    entry: SessionEntry

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def agent_id(self) -> str:
        return self.entry.agent_id

    @property
    def updated_at(self) -> int:
        return self.entry.updated_at

    @property
    def text(self) -> str:
        return search_text(self.entry)

    def search_fields(self) -> tuple[str, str, str]:
        return lowered_fields(self.entry)


def row(key: str, updated: int, agent: str = "main", **fields: str) -> Row:
    return Row(
        SessionEntry.model_validate({"key": key, "agentId": agent, "updatedAt": updated, **fields})
    )


def keys(rows: list[Row]) -> list[str]:
    return [r.key for r in rows]


def params(**wire: object) -> SessionsListParams:
    return SessionsListParams.model_validate(wire)


ROWS = [
    row("agent:main:a", NOW - 5 * 60_000, label="Weekly Plan", lastMessage="buy milk"),
    row("agent:ops:b", NOW - 60_000, agent="ops", lastMessage="Deploy the GATEWAY"),
    row("agent:main:c", NOW, lastMessage="ΣΟΦΟΣ"),
    row("agent:main:d", NOW - 60_000),  # ties with b: by key
]


def test_newest_first_ties_by_key_and_the_default_limit() -> None:
    assert keys(select(ROWS, params(), NOW)) == [
        "agent:main:c",
        "agent:main:d",
        "agent:ops:b",
        "agent:main:a",
    ]
    assert keys(select(reversed(ROWS), params(), NOW)) == keys(select(ROWS, params(), NOW))
    many = [row(f"agent:main:{n:05}", n) for n in range(LIST_MAX + 5)]
    listed = select(many, params(), NOW)
    assert len(listed) == LIST_MAX and listed[0].key == f"agent:main:{LIST_MAX + 4:05}"


def test_each_filter_and_their_combination() -> None:
    assert keys(select(ROWS, params(agentId="ops"), NOW)) == ["agent:ops:b"]
    assert keys(select(ROWS, params(activeMinutes=1), NOW)) == [
        "agent:main:c",
        "agent:main:d",  # exactly a minute ago is still within it
        "agent:ops:b",
    ]
    assert keys(select(ROWS, params(search="WEEKLY"), NOW)) == ["agent:main:a"]  # label
    assert keys(select(ROWS, params(search="gateway"), NOW)) == ["agent:ops:b"]  # message
    assert keys(select(ROWS, params(search=":main:"), NOW)) == [  # key
        "agent:main:c",
        "agent:main:d",
        "agent:main:a",
    ]
    # Lower-cased field by field, as `str.lower` does it (a final Σ is ς).
    assert keys(select(ROWS, params(search="ΣΟΦΟΣ"), NOW)) == ["agent:main:c"]
    combined = params(agentId="main", activeMinutes=2, search="agent", limit=1)
    assert keys(select(ROWS, combined, NOW)) == ["agent:main:c"]


def test_search_never_matches_across_two_fields() -> None:
    rows = [row("agent:main:x", 1, label="ab", lastMessage="cd")]
    assert select(rows, params(search="b\x00c"), NOW) == []
    assert select(rows, params(search="bc"), NOW) == []
    nul = [row("agent:main:y", 1, label="a\x00b")]  # a NUL inside one field still matches
    assert keys(select(nul, params(search="a\x00b"), NOW)) == ["agent:main:y"]
