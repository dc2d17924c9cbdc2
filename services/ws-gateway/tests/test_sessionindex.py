"""The sessions index, OpenClaw's `health` and `sessions.list` built from it at the edge,
against a real nats-server, without a socket (docs/openclaw.md, Health at the edge;
docs/ws-gateway.md, Reads at the edge)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from aisopod.bus import encode_reply
from aisopod.catalogue.sessions import SessionEntry, SessionsListParams, SessionsListResult
from aisopod.sessionlist import lowered_fields, search_text, select, sort_key
from aisopod_ws_gateway import sessionindex
from aisopod_ws_gateway.openclaw.adapters import ADAPTERS, Context
from aisopod_ws_gateway.openclaw.edgehealth import EdgeHealth
from aisopod_ws_gateway.sessionindex import SessionIndex

AGENTS = {"defaultId": "main", "agents": [{"id": "main", "name": "Main"}, {"id": "ops"}]}
HEALTH = {"ok": True, "ts": 10, "services": {"runtime": {"ok": True, "instances": 1}}}


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = "s" + uuid.uuid4().hex[:8]
    bucket = await js.create_key_value(config=KeyValueConfig(bucket=name))
    yield bucket
    await js.delete_key_value(name)
    await nc.close()


def entry(key: str, agent: str, updated: int) -> bytes:
    return orjson.dumps({"key": key, "agentId": agent, "updatedAt": updated, "lastMessage": "x"})


async def put(kv: KeyValue, key: str, agent: str, updated: int) -> int:
    return await kv.put("s." + key.replace(":", "=3A"), entry(key, agent, updated))


async def warm(index: SessionIndex) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not index.warm:
        assert asyncio.get_running_loop().time() < deadline, "index never warmed"
        await asyncio.sleep(0.02)


async def test_counts_recent_and_changes_follow_the_bucket(kv: KeyValue) -> None:
    await put(kv, "agent:main:a", "main", 100)
    await kv.put("other", b"{}")  # not a session: counted in the revision only
    index = SessionIndex(kv)
    changes: list[tuple[str, Any]] = []
    index.on_change = lambda key, stored: changes.append((key, stored))
    await index.start()
    try:
        await warm(index)
        assert index.count == 1 and index.per_agent == {"main": 1}
        assert changes == []  # what was stored before warm-up is no change

        await put(kv, "agent:ops:b", "ops", 300)
        written = await put(kv, "agent:main:a", "main", 200)  # an update, not a new one
        assert await index.wait_for(written, 5.0)
        assert index.count == 2 and index.per_agent == {"main": 1, "ops": 1}
        assert [m.key for m in index.recent()] == ["agent:ops:b", "agent:main:a"]
        assert [k for k, _ in changes] == ["agent:ops:b", "agent:main:a"]
        assert changes[-1][1]["updatedAt"] == 200

        await kv.delete("s.agent=3Aops=3Ab")
        assert await index.wait_for(await index.last_revision(), 5.0)
        assert index.per_agent == {"main": 1}
        assert changes[-1] == ("agent:ops:b", None)
    finally:
        await index.stop()


async def test_over_its_bound_the_index_stays_cold(kv: KeyValue) -> None:
    for n in range(3):
        await put(kv, f"agent:main:{n}", "main", n)
    index = SessionIndex(kv, max_sessions=2)
    await index.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not index.overflow:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert not index.warm and index.count == 0
        edge = EdgeHealth(lambda: HEALTH, lambda: (1, AGENTS), index)
        assert edge.body() is None  # cold: the adapter asks the owner
    finally:
        await index.stop()


async def test_edge_health_is_the_summary_the_owner_path_builds(kv: KeyValue) -> None:
    await put(kv, "agent:main:a", "main", 100)
    await put(kv, "agent:ops:b", "ops", 50)
    index = SessionIndex(kv)
    await index.start()
    try:
        await warm(index)
        agents: list[Any] = [None]
        beats = {"ops": {"enabled": True, "every": "90s", "everyMs": 90_000}}
        edge = EdgeHealth(lambda: HEALTH, lambda: agents[0], index, lambda: beats)
        assert edge.body() is None  # the default agent is not known yet
        agents[0] = (1, AGENTS)
        body = edge.body()
        assert body is not None and edge.body() is body  # encoded once
        at_edge = orjson.loads(body)["result"]

        sessions = {
            "sessions": [
                {"key": "agent:main:a", "agentId": "main", "updatedAt": 100},
                {"key": "agent:ops:b", "agentId": "ops", "updatedAt": 50},
            ]
        }
        build = ADAPTERS["health"].result
        assert build is not None
        owner = build(
            HEALTH,
            Context(params={}, also={"agents.list": AGENTS, "sessions.list": sessions},
                    version="1", elapsed_ms=0, heartbeats=beats),
        )  # fmt: skip
        owner = orjson.loads(orjson.dumps(owner))
        for summary in (at_edge, owner):
            for row in summary["sessions"]["recent"]:
                row.pop("age")  # the clock moved between the two
            for agent in summary["agents"]:
                for row in agent["sessions"]["recent"]:
                    row.pop("age")
        assert at_edge == owner
        assert at_edge["sessions"]["count"] == 2
        assert at_edge["heartbeatSeconds"] == 90  # ops, the one agent with a heartbeat
        assert [a["sessions"]["count"] for a in at_edge["agents"]] == [1, 1]

        written = await put(kv, "agent:main:c", "main", 400)
        assert await index.wait_for(written, 5.0)
        fresh = orjson.loads(edge.body() or b"")["result"]  # a change rebuilds it at once
        assert fresh["sessions"]["count"] == 3
        assert fresh["sessions"]["recent"][0]["key"] == "agent:main:c"
    finally:
        await index.stop()


# --- sessions.list at the edge ----------------------------------------------------------

STORED: list[dict[str, Any]] = [
    {"key": "agent:main:a", "agentId": "main", "updatedAt": 1_000, "createdAt": 900,
     "label": "Weekly plan", "lastMessage": "buy milk", "model": "openai/gpt-x"},
    {"key": "agent:ops:b", "agentId": "ops", "updatedAt": 3_000, "lastMessage": "Deploy it",
     "thinkingLevel": "high", "sendPolicy": "deny", "extra": {"kept": True}},
    {"key": "agent:main:c", "agentId": "main", "updatedAt": 2_000},
    {"key": "agent:main:d", "agentId": "main", "updatedAt": 3_000, "label": "deploy notes"},
]  # fmt: skip

FILTERS: list[dict[str, Any]] = [
    {},
    {"agentId": "main"},
    {"limit": 2},
    {"search": "DEPLOY"},
    {"search": "agent:main"},
    {"activeMinutes": 1},
    {"agentId": "main", "search": "deploy", "limit": 1},
    {"agentId": "nobody"},
]


def owner_body(stored: list[dict[str, Any]], wire: dict[str, Any], now_ms: int) -> bytes:
    """What the owner replies: its entries through the same `select`, encoded by the RPC
    server's `encode_reply` (the runtime's `sessions.list` handler)."""

    class Held:
        def __init__(self, entry: SessionEntry) -> None:
            self.entry, self.key, self.agent_id = entry, entry.key, entry.agent_id
            self.updated_at, self.text = entry.updated_at, search_text(entry)

        def search_fields(self) -> tuple[str, str, str]:
            return lowered_fields(self.entry)

    rows = [Held(SessionEntry.model_validate(s)) for s in stored]
    chosen = select(rows, SessionsListParams.model_validate(wire), now_ms)
    return encode_reply(SessionsListResult(sessions=[h.entry for h in chosen]))


async def put_stored(kv: KeyValue, stored: dict[str, Any]) -> int:
    return await kv.put("s." + stored["key"].replace(":", "=3A"), orjson.dumps(stored))


async def test_the_listing_is_the_owners_reply_for_each_filter(kv: KeyValue) -> None:
    for stored in STORED:
        await put_stored(kv, stored)
    index = SessionIndex(kv)
    await index.start()
    try:
        await warm(index)
        now = 3_000 + 30_000  # `activeMinutes: 1` keeps the two updated at 3,000
        for wire in FILTERS:
            body = index.list_body(SessionsListParams.model_validate(wire), now)
            assert body is not None
            assert orjson.loads(body) == orjson.loads(owner_body(STORED, wire, now)), wire
        listed = orjson.loads(index.list_body(SessionsListParams(), now) or b"")
        assert [s["key"] for s in listed["result"]["sessions"]] == [
            "agent:main:d",  # ties at 3,000: by key
            "agent:ops:b",
            "agent:main:c",
            "agent:main:a",
        ]

        changed = {**STORED[2], "updatedAt": 5_000, "lastMessage": "now newest"}
        written = await put_stored(kv, changed)
        assert await index.wait_for(written, 5.0)
        body = index.list_body(SessionsListParams(search="newest"), now)
        assert orjson.loads(body or b"") == orjson.loads(owner_body([changed], {}, now))
        await kv.delete("s.agent=3Aops=3Ab")
        assert await index.wait_for(await index.last_revision(), 5.0)
        left = [STORED[0], changed, STORED[3]]
        for wire in FILTERS:  # the order kept across the update and the delete
            body = index.list_body(SessionsListParams.model_validate(wire), now)
            assert orjson.loads(body or b"") == orjson.loads(owner_body(left, wire, now)), wire
        assert index.ordered == sorted(index.marks.values(), key=sort_key)
    finally:
        await index.stop()


async def test_past_the_listing_cap_the_owner_lists_until_back_under_it(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessionindex, "OVERFLOW_RETRY_S", 0.0)
    for stored in STORED[:3]:
        await put_stored(kv, stored)
    index = SessionIndex(kv, listed_max=lambda: 2)
    await index.start()
    try:
        await warm(index)
        assert not index.listing and index.list_body(SessionsListParams(), 0) is None
        assert index.count == 3 and all(m.wire is None for m in index.marks.values())
        edge = EdgeHealth(lambda: HEALTH, lambda: (1, AGENTS), index)
        assert edge.body() is not None  # the marks still answer OpenClaw's health

        await kv.delete("s.agent=3Amain=3Aa")
        await kv.delete("s.agent=3Aops=3Ab")  # 1 left: under 90 % of the cap
        deadline = asyncio.get_running_loop().time() + 10
        while not index.listing:  # the watch started over and read the listing again
            assert asyncio.get_running_loop().time() < deadline, "never listed again"
            await asyncio.sleep(0.02)
        listed = orjson.loads(index.list_body(SessionsListParams(), 0) or b"")
        assert listed == orjson.loads(owner_body([STORED[2]], {}, 0))
    finally:
        await index.stop()


async def test_an_entry_the_owner_would_reject_leaves_the_listing_to_it(kv: KeyValue) -> None:
    await put_stored(kv, STORED[0])
    bad = await put_stored(kv, {"key": "agent:main:z", "agentId": "main", "updatedAt": -1})
    index = SessionIndex(kv)
    await index.start()
    try:
        await warm(index)
        assert index.revision >= bad
        assert index.count == 2 and not index.listing
        written = await put_stored(kv, {**STORED[2], "key": "agent:main:z"})  # repaired
        assert await index.wait_for(written, 5.0)
        assert index.listing
    finally:
        await index.stop()
