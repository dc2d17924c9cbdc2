"""Methods of the WebSocket protocol walked against the real stack with the project's
JSON-RPC client: short session keys in `subscribe`, `unsubscribe`, `sessions.patch` of an
unknown session, `config.schema`, and the one shape of every server event."""

from __future__ import annotations

import uuid

import pytest

from tests.support.ws_client import RpcError, WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def _final(ws: WsClient, run_id: str) -> dict:
    event = await ws.next_event(
        lambda e: (
            e["method"] == "chat.event"
            and e["params"]["payload"].get("runId") == run_id
            and e["params"]["payload"].get("state") in ("final", "error", "aborted")
        ),
        timeout=30,
    )
    return event["params"]["payload"]


async def test_subscribe_with_a_short_session_key_receives_that_sessions_events(env) -> None:
    name = f"short-{uuid.uuid4().hex[:8]}"
    other = f"other-{uuid.uuid4().hex[:8]}"
    async with (
        await WsClient.connect(env.url, token=env.token) as sender,
        await WsClient.connect(env.url, token=env.token, subscribe=["chat.event"]) as watcher,
    ):
        result = await watcher.call("subscribe", {"events": [], "sessionKeys": [name]})
        assert result["sessionKeys"] == [f"agent:main:{name}"]
        skipped = await sender.call("chat.send", {"sessionKey": other, "message": "not this"})
        sent = await sender.call("chat.send", {"sessionKey": name, "message": "this one"})
        final = await _final(watcher, sent["runId"])
        assert final["sessionKey"] == f"agent:main:{name}"
        seen = {e["params"]["payload"].get("runId") for e in watcher.drain_events()}
        assert skipped["runId"] not in seen
        # The canonical form and the short one name the same session: unsubscribing either.
        result = await watcher.call("unsubscribe", {"events": [], "sessionKeys": [name]})
        assert result["sessionKeys"] == []


async def test_unsubscribe_removes_or_excludes_events(env) -> None:
    async with await WsClient.connect(env.url, token=env.token) as ws:
        excluded = await ws.call("unsubscribe", {"events": ["tick", "presence.changed"]})
        assert excluded["events"] == [">"]
        assert excluded["excluded"] == ["presence.changed", "tick"]
        await ws.call("subscribe", {"events": ["chat.event", "cron.*"]})
        narrowed = await ws.call("unsubscribe", {"events": ["cron.*"]})
        assert narrowed["events"] == ["chat.event"]
        # What is left is what arrives: a chat run's events, no cron event and no tick.
        sent = await ws.call(
            "chat.send", {"sessionKey": f"u-{uuid.uuid4().hex[:8]}", "message": "x"}
        )
        await _final(ws, sent["runId"])
        assert {e["method"] for e in ws.drain_events()} <= {"chat.event"}
        with pytest.raises(RpcError) as info:
            await ws.call("unsubscribe", {"events": ["not a pattern"]})
        assert info.value.code == -32602


async def test_sessions_patch_of_an_unknown_session_is_not_found(env) -> None:
    name = f"patch-{uuid.uuid4().hex[:8]}"
    async with await WsClient.connect(env.url, token=env.token) as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("sessions.patch", {"key": name, "label": "nope"})
        assert info.value.code == -32004 and info.value.detail == "SESSION_NOT_FOUND"
        listed = await ws.call("sessions.list", {"search": name})
        assert listed["sessions"] == []  # nothing was created
        sent = await ws.call("chat.send", {"sessionKey": name, "message": "create it"})
        await ws.call("agent.wait", {"runId": sent["runId"], "timeoutMs": 20_000}, timeout=30)
        patched = await ws.call("sessions.patch", {"key": name, "label": "now"})
        assert patched["key"] == f"agent:main:{name}" and patched["entry"]["label"] == "now"


async def test_config_schema_describes_the_document(env) -> None:
    async with await WsClient.connect(env.url, token=env.token) as ws:
        schema = await ws.call("config.schema")
        assert schema["type"] == "object"
        assert {"gateway", "auth", "models", "logging"} <= set(schema["properties"])
        config = (await ws.call("config.get"))["config"]
        assert set(config) <= set(schema["properties"])
    async with await WsClient.connect(env.url, token=env.token, scopes=[]) as bare:
        with pytest.raises(RpcError) as info:  # reading the config needs operator.read
            await bare.call("config.schema")
        assert info.value.code == -32003


async def test_every_server_event_has_one_shape(env) -> None:
    """Broadcast events: params {seq, ts, payload}; the others (connect.challenge, tick,
    targeted frames such as node.invoke.request, see test_ws_nodes) the same without seq:
    a client reads `params.payload` for all of them."""
    async with await WsClient.connect(env.url, token=env.token) as ws:
        assert set(ws.challenge) >= {"nonce", "ts"}  # the client read params.payload
        key = f"s-{uuid.uuid4().hex[:8]}"
        sent = await ws.call("chat.send", {"sessionKey": key, "message": "y"})
        await _final(ws, sent["runId"])
        for event in ws.drain_events():
            params = event["params"]
            assert "payload" in params and isinstance(params["ts"], int), event
            assert isinstance(params.get("seq"), int) or event["method"] == "tick", event
