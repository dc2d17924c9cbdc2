"""Reads at the edge against the real stack: each edge-served method gives over the
WebSocket exactly what its owner gives over NATS, is counted as answered at the edge, and a
read after a write on the same connection sees the write (for `sessions.list`: after a chat
turn). Past its listing cap (`gateway.sessionsListedMax`) `sessions.list` goes to the owner.
`models.list` is served at the edge with the stack's discovering `fake` provider too (from
the runtime's discoveries in KV `models`), and follows a config change that adds or removes
a provider.

Connections go to one ws-gateway replica directly, so its /metrics count what it did.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aisopod.principal import Principal
from tests.conftest import FAKE_API_KEY
from tests.support.control_writes import control_write
from tests.support.ws_client import WsClient
from tests.support.ws_stack import WsStack, live_gateway_config, require_ws_stack

pytestmark = pytest.mark.integration

EDGE_READS = [
    ("config.get", {}),
    ("config.schema", {}),
    ("agents.list", {}),
    ("cron.list", {}),
    ("cron.list", {"includeDisabled": True}),
    ("models.list", {}),
]


EDGE, FALLBACK = "aisopod_ws_edge_reads_total", "aisopod_ws_edge_fallbacks_total"


def admin() -> Principal:
    return Principal(id=f"edge-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def edge_counters(replica_url: str) -> dict[str, float]:
    parts = urlsplit(replica_url)
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"http://{parts.netloc}/metrics")).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith((f"{EDGE} ", f"{FALLBACK} ")):
            name, value = line.split()
            out[name] = float(value)
    return out


async def settled(read: Any, expect: Any, timeout: float = 10.0) -> Any:
    """Poll `read()` until it equals `expect()` (both sides may be mid-change)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got, want = await read(), await expect()
        if got == want or asyncio.get_running_loop().time() > deadline:
            return got, want
        await asyncio.sleep(0.05)


async def at_edge(ws: WsClient, replica: str, method: str, timeout: float = 15.0) -> Any:
    """Call `method` until one call is counted as answered at the edge (a discovery not
    stored yet sends the first to the owner, which stores it); that call's answer."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        before = await edge_counters(replica)
        got = await ws.call(method)
        after = await edge_counters(replica)
        if after[EDGE] > before[EDGE]:
            return got
        assert asyncio.get_running_loop().time() < deadline, f"{method} never at the edge"
        await asyncio.sleep(0.1)


async def test_each_edge_read_equals_the_owner_and_is_answered_at_the_edge(env, bus) -> None:
    replica = env.replicas[0]
    async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
        # Something in each replicated bucket beyond the defaults: an agent, a disabled job.
        suffix = uuid.uuid4().hex[:6]
        agent = await ws.call("agents.create", {"name": f"edge {suffix}"})
        job = await ws.call(
            "cron.add",
            {
                "name": f"edge-{suffix}",
                "schedule": {"kind": "every", "everyMs": 3_600_000},
                "payload": {"kind": "systemEvent", "text": "edge"},
                "enabled": False,
            },
        )
        try:
            providers = (await ws.call("config.get"))["config"]["models"]["providers"]
            # The stack's `fake` lists its upstream's models: served from KV `models`.
            assert any(p["id"] == "fake" and p.get("discoverModels", True) for p in providers)
            await at_edge(ws, replica, "models.list")
            for method, params in EDGE_READS:
                before = await edge_counters(replica)
                got, want = await settled(
                    lambda m=method, p=params: ws.call(m, p),
                    lambda m=method, p=params: bus.call(m, p, principal=admin()),
                )
                assert got == want, method
                after = await edge_counters(replica)
                assert after[EDGE] > before[EDGE], (method, before, after)
            listed = await ws.call("cron.list", {"includeDisabled": True})
            assert job["jobId"] in [j["jobId"] for j in listed["jobs"]]
            assert job["jobId"] not in [j["jobId"] for j in (await ws.call("cron.list"))["jobs"]]
        finally:
            await ws.call("cron.remove", {"jobId": job["jobId"]})
            await ws.call("agents.delete", {"agentId": agent["id"]})


async def test_read_your_writes_on_one_connection(env, bus) -> None:
    replica = env.replicas[0]
    async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
        current = await ws.call("config.get")
        title = f"edge-{uuid.uuid4().hex[:6]}"
        params = {"patch": {"ui": {"title": title}}, "baseHash": current["hash"]}
        # As the admin token (shared with other tests): wait out a spent write budget.
        patched = await control_write(lambda: ws.call("config.patch", params))
        try:
            seen = await ws.call("config.get")
            assert seen["hash"] == patched["hash"]
            assert seen["config"]["ui"]["title"] == title
            assert seen == await bus.call("config.get", {}, principal=admin())

            agent = await ws.call("agents.create", {"name": f"ryw {title}"})
            listed = await ws.call("agents.list")
            assert agent["id"] in [a["id"] for a in listed["agents"]]
            await ws.call("agents.delete", {"agentId": agent["id"]})
            listed = await ws.call("agents.list")
            assert agent["id"] not in [a["id"] for a in listed["agents"]]
        finally:
            now = await bus.call("config.get", {}, principal=admin())
            await bus.call(
                "config.patch",
                {
                    "patch": {"ui": {"title": current["config"]["ui"].get("title")}},
                    "baseHash": now["hash"],
                },
                principal=admin(),
            )


def session_filters(marker: str) -> list[dict[str, Any]]:
    return [
        {},
        {"limit": 1},
        {"agentId": "main"},
        {"agentId": "nobody-here"},
        {"search": marker},
        {"search": marker.upper()},  # case-insensitive
        {"activeMinutes": 60},
        {"agentId": "main", "search": marker, "limit": 1, "activeMinutes": 5},
    ]


async def test_sessions_list_at_the_edge_after_chat_turns(env, bus) -> None:
    replica = env.replicas[0]
    marker = f"edge{uuid.uuid4().hex[:8]}"
    keys = [f"agent:main:{marker}-{n}" for n in range(2)]
    async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
        # The sessions index runs only while read: the first read starts it and the owner
        # answers until it is warm (docs/ws-gateway.md, What runs when).
        deadline = time.monotonic() + 30
        while True:
            before = await edge_counters(replica)
            await ws.call("sessions.list", {"search": marker})
            if (await edge_counters(replica))[EDGE] > before[EDGE]:
                break
            assert time.monotonic() < deadline, "the sessions index did not warm up"
            await asyncio.sleep(0.05)
        for n, key in enumerate(keys):
            started = await ws.call("chat.send", {"sessionKey": key, "message": f"hi {n}"})
            # Read-your-writes: the turn's session is in the very next read on this
            # connection, answered at the edge.
            before = await edge_counters(replica)
            listed = await ws.call("sessions.list", {"search": marker})
            assert key in [s["key"] for s in listed["sessions"]]
            after = await edge_counters(replica)
            assert after[EDGE] > before[EDGE], (before, after)
            await ws.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        await ws.call("sessions.patch", {"key": keys[0], "label": f"Label {marker}"})
        listed = await ws.call("sessions.list", {"search": f"label {marker}"})
        assert [s["key"] for s in listed["sessions"]] == [keys[0]]

        for params in session_filters(marker):
            before = await edge_counters(replica)
            got, want = await settled(
                lambda p=params: ws.call("sessions.list", p),
                lambda p=params: bus.call("sessions.list", p, principal=admin()),
            )
            assert got == want, params
            after = await edge_counters(replica)
            assert after[EDGE] > before[EDGE], (params, before, after)
        mine = await ws.call("sessions.list", {"search": marker})
        assert sorted(s["key"] for s in mine["sessions"]) == keys

        await ws.call("sessions.delete", {"key": keys[1]})
        listed = await ws.call("sessions.list", {"search": marker})
        assert [s["key"] for s in listed["sessions"]] == [keys[0]]
        await ws.call("sessions.delete", {"key": keys[0]})


async def test_sessions_list_past_the_listing_cap_goes_to_the_owner(env, bus) -> None:
    replica = env.replicas[0]
    async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
        key = f"agent:main:cap-{uuid.uuid4().hex[:8]}"
        started = await ws.call("chat.send", {"sessionKey": key, "message": "over the cap"})
        await ws.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        try:
            kept = await ws.call("sessions.list", {"search": key})  # answered here and kept
            assert [s["key"] for s in kept["sessions"]] == [key]
            async with live_gateway_config(env, sessionsListedMax=0):
                for _ in range(2):  # nothing written since: the kept reply must not answer
                    before = await edge_counters(replica)
                    got = await ws.call("sessions.list", {"search": key})
                    after = await edge_counters(replica)
                    assert [s["key"] for s in got["sessions"]] == [key]
                    owner = await bus.call("sessions.list", {"search": key}, principal=admin())
                    assert got == owner
                    assert after[FALLBACK] > before[FALLBACK], (before, after)
                    assert after[EDGE] == before[EDGE], (before, after)
        finally:
            await ws.call("sessions.delete", {"key": key})


async def test_models_list_follows_a_provider_added_and_removed(env, bus, stack) -> None:
    """A discovering provider added by config.patch is listed by the very next models.list
    on that connection (the owner discovers and stores it), then served at the edge; once
    removed, the next read no longer lists it. Each answer equals the owner's."""
    replica = env.replicas[0]
    provider_id = f"edge{uuid.uuid4().hex[:6]}"
    added = {
        "id": provider_id,
        "kind": "openai",
        "baseUrl": stack.fake_url,
        "apiKey": FAKE_API_KEY,
        "models": [],
    }
    async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
        current = await ws.call("config.get")
        providers = current["config"]["models"]["providers"]

        async def patch(listed: list[dict[str, Any]]) -> None:
            now = await ws.call("config.get")
            params = {"patch": {"models": {"providers": listed}}, "baseHash": now["hash"]}
            await control_write(lambda: ws.call("config.patch", params))

        try:
            await patch([*providers, added])
            ids = [m["id"] for m in (await ws.call("models.list"))["models"]]
            assert f"{provider_id}/fake-small" in ids and f"{provider_id}/fake-large" in ids
            got = await at_edge(ws, replica, "models.list")
            assert got == await bus.call("models.list", {}, principal=admin())
            sources = {m["id"]: m["source"] for m in got["models"]}
            assert sources[f"{provider_id}/fake-small"] == "upstream"

            await patch(providers)
            ids = [m["id"] for m in (await ws.call("models.list"))["models"]]
            assert not any(i.startswith(f"{provider_id}/") for i in ids)
            got = await at_edge(ws, replica, "models.list")
            assert got == await bus.call("models.list", {}, principal=admin())
        finally:
            now = await bus.call("config.get", {}, principal=admin())
            listed = now["config"]["models"]["providers"]
            if any(p["id"] == provider_id for p in listed):
                await bus.call(
                    "config.patch",
                    {
                        "patch": {"models": {"providers": providers}},
                        "baseHash": now["hash"],
                    },
                    principal=admin(),
                )
