"""http-api's reads at the edge against the real stack (docs/http-api.md, Reads at the
edge): `GET /v1/models` and `GET /status` through Traefik give what the runtime gives over
NATS, are counted as answered from http-api's replicas, an admin's `/status` still comes
from the runtime (its internals), and a caller's read after its own write sees the write.
`/v1/models`' provider models are `models.list`'s (the stack's `fake` discovers its
upstream's models), from the replica of KV `models`, and follow a provider added and removed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest

from aisopod.principal import Principal
from tests.conftest import FAKE_API_KEY
from tests.integration.auth_support import Admin, remember

pytestmark = pytest.mark.integration

READS, FALLBACKS = "aisopod_http_edge_reads_total", "aisopod_http_edge_fallbacks_total"


def http_api_urls(stack: Any) -> list[str]:
    record = json.loads((stack.state_dir / "stack.json").read_text())
    return [str(url) for url in record["service_urls"]["http-api"]]


async def counters(stack: Any) -> dict[tuple[str, str], float]:
    """The edge-read counters summed over the http-api replicas (`/metrics` is a probe)."""
    out: dict[tuple[str, str], float] = {}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for url in http_api_urls(stack):
            for line in (await http.get(f"{url}/metrics")).text.splitlines():
                for name in (READS, FALLBACKS):
                    if line.startswith(name + "{"):
                        labels, value = line[len(name) :].split()
                        key = (name, labels)
                        out[key] = out.get(key, 0.0) + float(value)
    return out


def grew(before: dict, after: dict, name: str, route: str) -> bool:
    key = (name, f'{{route="{route}"}}')
    return after.get(key, 0.0) > before.get(key, 0.0)


async def settled(read: Callable[[], Awaitable[Any]], expect: Callable[[], Awaitable[Any]]) -> Any:
    """Poll until `read()` equals `expect()` (both sides may be mid-change), 10 s at most."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        got, want = await read(), await expect()
        if got == want or asyncio.get_running_loop().time() > deadline:
            return got, want
        await asyncio.sleep(0.05)


def without_clock(status: dict[str, Any]) -> dict[str, Any]:
    """Without the clock readings each answer takes: the uptime, the usage window's ends."""
    out = {k: v for k, v in status.items() if k != "uptimeMs"}
    if isinstance(out.get("usage"), dict):
        out["usage"] = {k: v for k, v in out["usage"].items() if k not in ("since", "until")}
    return out


async def _clockless(status: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    return without_clock(await status)


async def token(admin: Admin, *scopes: str) -> str:
    created = await admin.request("token.create", {"scopes": list(scopes), "name": "edge-reads"})
    return remember(created["token"])


async def test_models_and_status_equal_the_owner_and_come_from_the_edge(
    stack, admin: Admin, bus
) -> None:
    reader = await token(admin, "operator.read")
    as_reader = Principal(id="edge-reads-test", scopes=("operator.read",))
    owner_admin = Principal(id="edge-reads-admin", scopes=("operator.admin",))
    agent = await bus.call(
        "agents.create", {"name": f"edge {uuid.uuid4().hex[:6]}"}, principal=owner_admin
    )
    headers = {"Authorization": f"Bearer {reader}"}
    try:
        async with httpx.AsyncClient(base_url=stack.http_url, trust_env=False, timeout=10) as http:

            async def edge_agents() -> list[str]:
                models = (await http.get("/v1/models", headers=headers)).json()["data"]
                return [m["id"] for m in models if m["owned_by"] == "aisopod"]

            async def owner_agents() -> list[str]:
                listed = await bus.call("agents.list", {}, principal=as_reader)
                return [f"aisopod/{a['id']}" for a in listed["agents"]]

            before = await counters(stack)
            got, want = await settled(edge_agents, owner_agents)
            assert got == want and f"aisopod/{agent['id']}" in got
            one = await http.get(f"/v1/models/aisopod/{agent['id']}", headers=headers)
            assert one.status_code == 200 and one.json()["id"] == f"aisopod/{agent['id']}"

            async def edge_status() -> dict[str, Any]:
                answer = await http.get("/status", headers=headers)
                assert answer.status_code == 200
                assert answer.headers["content-type"] == "application/json"
                return dict(answer.json())

            async def owner_status() -> dict[str, Any]:
                return dict(await bus.call("status", {}, principal=as_reader))

            # The session count's replica starts with the first /status that needs it (the
            # owner answers while it warms up): ask until the edge answers one.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while not grew(before, await counters(stack), READS, "status"):
                assert loop.time() < deadline, "/status was never answered at the edge"
                await edge_status()
                await asyncio.sleep(0.05)
            got_status, want_status = await settled(lambda: edge_status(), lambda: owner_status())
            # uptime and the usage window are clock readings; everything else must match.
            assert without_clock(got_status) == without_clock(want_status)
            raw = await edge_status()
            assert raw["uptimeMs"] > 0 and "internals" not in raw and "usage" in raw
            # Agents, not every key of their bucket (it also holds each agent's files).
            assert got_status["agents"] == len(await owner_agents())
            after = await counters(stack)
            assert grew(before, after, READS, "models") and grew(before, after, READS, "status")

            # An admin's /status carries the internals: the runtime's, not the edge's.
            full = await http.get(
                "/status", headers={"Authorization": f"Bearer {stack.admin_token}"}
            )
            assert full.status_code == 200 and "internals" in full.json()
            assert grew(after, await counters(stack), FALLBACKS, "status")
    finally:
        await bus.call("agents.delete", {"agentId": agent["id"]}, principal=owner_admin)


async def test_a_read_after_the_callers_own_write_sees_it(stack, admin: Admin, bus) -> None:
    """A chat turn in agent mode stores a new session (a write through http-api); the same
    caller's next /status counts it at once, with no polling."""
    writer = await token(admin, "operator.read", "operator.write")
    as_writer = Principal(id="edge-reads-writer", scopes=("operator.read",))
    async with httpx.AsyncClient(base_url=stack.http_url, trust_env=False, timeout=30) as http:
        headers = {"Authorization": f"Bearer {writer}"}
        before = (await http.get("/status", headers=headers)).json()["sessions"]
        sdk = openai.AsyncOpenAI(
            base_url=f"{stack.http_url}/v1",
            api_key=writer,
            http_client=httpx.AsyncClient(trust_env=False),
        )
        try:
            for n in range(3):
                await sdk.chat.completions.create(
                    model="aisopod/main",
                    messages=[{"role": "user", "content": "hello"}],
                    user=f"edge-ryw-{uuid.uuid4().hex[:8]}-{n}",
                )
                seen = (await http.get("/status", headers=headers)).json()["sessions"]
                owner = (await bus.call("status", {}, principal=as_writer))["sessions"]
                assert seen == owner >= before + n + 1
        finally:
            await sdk.close()


async def test_provider_models_equal_models_list_and_follow_provider_changes(
    stack, admin: Admin, bus
) -> None:
    reader = await token(admin, "operator.read")
    as_reader = Principal(id="edge-reads-models", scopes=("operator.read",))
    owner_admin = Principal(id="edge-reads-models-admin", scopes=("operator.admin",))
    headers = {"Authorization": f"Bearer {reader}"}
    provider_id = f"edge{uuid.uuid4().hex[:6]}"
    added = {
        "id": provider_id,
        "kind": "openai",
        "baseUrl": stack.fake_url,
        "apiKey": FAKE_API_KEY,
        "models": [],
    }
    original = (await bus.call("config.get", {}, principal=owner_admin))["config"]
    providers = original["models"]["providers"]

    async def patch(listed: list[dict[str, Any]]) -> None:
        now = await bus.call("config.get", {}, principal=owner_admin)
        params = {"patch": {"models": {"providers": listed}}, "baseHash": now["hash"]}
        await bus.call("config.patch", params, principal=owner_admin)

    async with httpx.AsyncClient(base_url=stack.http_url, trust_env=False, timeout=10) as http:

        async def edge_models() -> list[tuple[str, str]]:
            data = (await http.get("/v1/models", headers=headers)).json()["data"]
            return [(m["id"], m["owned_by"]) for m in data if m["owned_by"] != "aisopod"]

        async def owner_models() -> list[tuple[str, str]]:
            config = (await bus.call("config.get", {}, principal=owner_admin))["config"]
            proxied = {
                p["id"]
                for p in config["models"]["providers"]
                if p.get("kind", "openai") == "openai" and p.get("baseUrl")
            }
            listed = await bus.call("models.list", {}, principal=as_reader)
            return [(m["id"], m["provider"]) for m in listed["models"] if m["provider"] in proxied]

        async def at_edge() -> list[tuple[str, str]]:
            """/v1/models until one answer's provider models came from the replica."""
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                before = await counters(stack)
                got = await edge_models()
                if grew(before, await counters(stack), READS, "models-providers"):
                    return got
                assert asyncio.get_running_loop().time() < deadline, "never from the replica"
                await asyncio.sleep(0.1)

        got, want = await settled(edge_models, owner_models)
        assert got == want and ("fake/fake-small", "fake") in got
        assert await at_edge() == await owner_models()
        try:
            await patch([*providers, added])
            got, want = await settled(edge_models, owner_models)
            assert got == want and (f"{provider_id}/fake-large", provider_id) in got
            assert await at_edge() == await owner_models()
            await patch(providers)
            got, want = await settled(edge_models, owner_models)
            assert got == want and not any(owner == provider_id for _, owner in got)
            assert await at_edge() == await owner_models()
        finally:
            current = (await bus.call("config.get", {}, principal=owner_admin))["config"]
            if any(p["id"] == provider_id for p in current["models"]["providers"]):
                await patch(providers)
