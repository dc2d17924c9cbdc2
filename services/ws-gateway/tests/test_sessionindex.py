"""The sessions index and OpenClaw's `health` built from it at the edge, against a real
nats-server (docs/openclaw.md, Health at the edge)."""

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
