"""Agents, sessions, models, voice wake and tools on the shared stack."""

from __future__ import annotations

import uuid

import pytest

from aisopod.contracts.tools import http_tool_catalog, http_tool_invoke
from aisopod.errors import Conflict, Forbidden, InvalidParams, NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    OPERATOR,
    RuntimeClient,
    new_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration


async def test_agents_crud_and_default_agent(rt: RuntimeClient) -> None:
    listed = await rt.call("agents.list", {})
    assert listed["defaultId"] == "main" and listed["agents"][0]["id"] == "main"
    agent_id = f"a-{uuid.uuid4().hex[:8]}"
    created = await rt.call(
        "agents.create",
        {"id": agent_id, "name": "Helper", "model": "fake/fake-large", "tools": ["current_time"]},
    )
    assert created["model"] == "fake/fake-large" and created["tools"] == ["current_time"]
    with pytest.raises(Conflict):
        await rt.call("agents.create", {"id": agent_id, "name": "again"})
    with pytest.raises(InvalidParams):
        await rt.call("agents.create", {"name": "bad model", "model": "nowhere/x"})
    updated = await rt.call(
        "agents.update", {"agentId": agent_id, "instructions": "Be brief.", "tools": None}
    )
    assert updated["instructions"] == "Be brief." and updated["tools"] is None
    assert updated["model"] == "fake/fake-large"
    slugged = await rt.call("agents.create", {"name": f"My Agent {agent_id}"})
    assert slugged["id"] == f"my-agent-{agent_id}"
    ids = {a["id"] for a in (await rt.call("agents.list", {}))["agents"]}
    assert {agent_id, slugged["id"], "main"} <= ids
    # The agent's model is used by its sessions.
    result = await rt.call("agent", {"agentId": agent_id, "message": "hi there", "wait": True})
    assert result["status"] == "ok" and result["result"]["text"] == "echo: hi there"
    with pytest.raises(Conflict):
        await rt.call("agents.delete", {"agentId": "main"})
    for removed in (agent_id, slugged["id"]):
        assert await rt.call("agents.delete", {"agentId": removed}) == {"ok": True}
    with pytest.raises(NotFound):
        await rt.call("agents.delete", {"agentId": agent_id})
    with pytest.raises(NotFound):
        await rt.call("chat.send", {"sessionKey": f"agent:{agent_id}:x", "message": "hi"})


async def test_sessions_patch_reset_delete(rt: RuntimeClient) -> None:
    key = new_session("sess")
    with pytest.raises(NotFound):  # sessions are created by their first message, not a patch
        await rt.call("sessions.patch", {"key": key, "label": "Work"})
    reply = await rt.call("sessions.send", {"sessionKey": key, "message": "ping", "wait": True})
    assert (reply["status"], reply["reply"]) == ("ok", "echo: ping")
    patched = await rt.call("sessions.patch", {"key": key, "label": "Work", "sendPolicy": "deny"})
    assert patched["entry"]["label"] == "Work" and patched["entry"]["sendPolicy"] == "deny"
    with pytest.raises(Forbidden):
        await rt.call("sessions.send", {"sessionKey": key, "message": "from another agent"})
    cleared = await rt.call("sessions.patch", {"key": key, "sendPolicy": None})
    assert cleared["entry"]["sendPolicy"] is None and cleared["entry"]["label"] == "Work"
    assert len((await rt.call("chat.history", {"sessionKey": key}))["messages"]) == 2
    assert await rt.call("sessions.reset", {"key": key}) == {"ok": True}
    assert (await rt.call("chat.history", {"sessionKey": key}))["messages"] == []
    (entry,) = (await rt.call("sessions.list", {"search": key}))["sessions"]
    assert entry["label"] == "Work" and entry.get("lastMessage") is None
    assert await rt.call("sessions.delete", {"key": key}) == {"ok": True}
    assert (await rt.call("sessions.list", {"search": key}))["sessions"] == []
    with pytest.raises(NotFound):
        await rt.call("sessions.reset", {"key": key})


async def test_bare_session_keys_belong_to_the_default_agent(rt: RuntimeClient) -> None:
    name = f"bare-{uuid.uuid4().hex[:8]}"
    started = await rt.call("chat.send", {"sessionKey": name, "message": "hi"})
    final = await rt.chat_final(started["runId"])
    assert final["sessionKey"] == f"agent:main:{name}"
    with pytest.raises(InvalidParams):
        await rt.call("chat.send", {"sessionKey": "agent:bad id:x", "message": "hi"})


async def test_models_list_merges_configured_models(rt: RuntimeClient) -> None:
    models = {m["id"]: m for m in (await rt.call("models.list", {}))["models"]}
    assert {"echo/echo", "fake/fake-small", "fake/fake-large"} <= set(models)
    assert models["fake/fake-small"]["provider"] == "fake"
    assert models["fake/fake-small"]["model"] == "fake-small"


async def test_voicewake_get_set_broadcasts(rt: RuntimeClient) -> None:
    before = (await rt.call("models.voicewake", {}))["triggers"]
    word = f"wake{uuid.uuid4().hex[:6]}"
    try:
        result = await rt.call("models.voicewake", {"triggers": [word, " computer ", word]})
        assert result["triggers"] == [word, "computer"]
        event = await rt.wait_event("voicewake.changed", lambda p: word in p["triggers"])
        assert event == {"triggers": [word, "computer"]}
        assert (await rt.call("models.voicewake", {}))["triggers"] == [word, "computer"]
    finally:
        await rt.call("models.voicewake", {"triggers": before})


async def test_tools_catalog_and_invoke(rt: RuntimeClient, stack) -> None:
    names = {t["name"] for t in (await rt.call("tools.catalog", {}))["tools"]}
    assert {
        "current_time",
        "sessions_list",
        "sessions_send",
        "node_invoke",
        "canvas_write",
        "exec",
    } <= names
    now = await rt.call("tools.invoke", {"tool": "current_time", "args": {"timezone": "UTC"}})
    assert now["ok"] is True and now["result"]["timezone"] == "UTC"
    bad_zone = await rt.call(
        "tools.invoke", {"tool": "current_time", "args": {"timezone": "Mars/Base"}}
    )
    assert bad_zone["ok"] is False and "timezone" in bad_zone["result"]["error"]
    with pytest.raises(InvalidParams):
        await rt.call("tools.invoke", {"tool": "current_time", "args": {"zone": "UTC"}})
    with pytest.raises(NotFound):
        await rt.call("tools.invoke", {"tool": "no_such_tool", "args": {}})
    path = f"tests/{uuid.uuid4().hex}.html"
    wrote = await rt.call(
        "tools.invoke", {"tool": "canvas_write", "args": {"path": path, "content": "<h1>hi</h1>"}}
    )
    assert wrote == {"ok": True, "result": {"path": path, "bytes": 11, "url": f"/canvas/{path}"}}
    store = await rt.bus.js.object_store("canvas")
    stored = await store.get(path)
    assert stored.data == b"<h1>hi</h1>"
    assert stored.info.headers == {"Content-Type": ["text/html"]}
    escaped = await rt.call(
        "tools.invoke", {"tool": "canvas_write", "args": {"path": "../x", "content": "x"}}
    )
    assert escaped["ok"] is False
    # A node call reaches ws-gateway's node.invoke; no such node → a tool failure.
    node = await rt.call(
        "tools.invoke", {"tool": "node_invoke", "args": {"nodeId": "ghost", "command": "x"}}
    )
    assert node["ok"] is False and "node.invoke failed" in node["result"]["error"]


async def test_http_surface_applies_http_deny(rt: RuntimeClient) -> None:
    names = {t["name"] for t in (await http_tool_catalog(rt.bus, OPERATOR))["tools"]}
    assert "current_time" in names and not names & {"exec", "sessions_send", "node_invoke"}
    with pytest.raises(NotFound):
        await http_tool_invoke(rt.bus, OPERATOR, "exec", {"command": "id"})
    listed = await http_tool_invoke(rt.bus, OPERATOR, "sessions_list", {"limit": 1})
    assert listed["ok"] is True and len(listed["result"]["sessions"]) <= 1


async def test_agent_tool_allowlist_limits_what_the_model_sees(rt: RuntimeClient, stack) -> None:
    agent_id = f"lim-{uuid.uuid4().hex[:8]}"
    await rt.call(
        "agents.create",
        {"id": agent_id, "name": "limited", "model": "fake/fake-small", "tools": ["current_time"]},
    )
    try:
        from tests.integration.runtime_support import fake_requests

        marker = uuid.uuid4().hex
        result = await rt.call("agent", {"agentId": agent_id, "message": marker, "wait": True})
        assert result["status"] == "ok"
        (request,) = fake_requests(stack.fake_url, marker)
        assert [t["function"]["name"] for t in request["tools"]] == ["current_time"]
        assert request["messages"][0] == {
            "role": "system",
            "content": "You are a helpful assistant.",
        }
    finally:
        await rt.call("agents.delete", {"agentId": agent_id})
