"""`/openclaw` over a real socket against the in-process gateway (real NATS): the codec is
chosen by the upgrade path, the handshake and the close codes (docs/openclaw.md)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
import pytest
import websockets

from tests.support.ws_client import WsClient

CLI = {"id": "cli", "version": "2026.9.6", "platform": "linux", "mode": "cli"}


def openclaw_url(gw: Any) -> str:
    return gw.url.rsplit("/", 1)[0] + "/openclaw"


def dial(gw: Any) -> Any:
    """A socket on /openclaw, with the edge proof Traefik would add (conftest)."""
    return websockets.connect(openclaw_url(gw), additional_headers=WsClient.default_headers)


async def recv(ws: Any) -> dict[str, Any]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), 5))


async def connect(ws: Any, **params: Any) -> dict[str, Any]:
    challenge = await recv(ws)
    assert challenge["type"] == "event" and challenge["event"] == "connect.challenge"
    assert challenge["payload"]["nonce"] and isinstance(challenge["payload"]["ts"], int)
    body = {"minProtocol": 4, "maxProtocol": 4, "client": CLI, "scopes": ["operator.read"]}
    body |= params
    await ws.send(orjson.dumps({"type": "req", "id": "1:c", "method": "connect", "params": body}))
    return await recv(ws)


async def test_hello_ok_then_requests_and_an_unknown_method(gw) -> None:
    async with dial(gw) as ws:
        hello = await connect(ws, auth={"token": "admin-token", "password": "admin-token"})
        assert hello["type"] == "res" and hello["id"] == "1:c" and hello["ok"] is True
        payload = hello["payload"]
        assert payload["type"] == "hello-ok" and payload["protocol"] == 4
        assert "buildId" not in payload["server"] and payload["server"]["connId"]
        assert "system-presence" in payload["features"]["methods"]
        assert payload["auth"]["scopes"] == ["operator.read"]
        await ws.send(b'{"type":"req","id":"2","method":"system-presence"}')
        presence = await recv(ws)
        while presence.get("type") == "event":  # a tick or presence may come first
            presence = await recv(ws)
        assert presence["id"] == "2" and presence["ok"] is True
        assert any(row["clientId"] == "cli" for row in presence["payload"])
        await ws.send(b'{"type":"req","id":"3","method":"no.such.method"}')
        unknown = await recv(ws)
        while unknown.get("type") == "event":
            unknown = await recv(ws)
        assert unknown["ok"] is False
        assert unknown["error"]["code"] == "INVALID_REQUEST"
        assert unknown["error"]["message"] == "unknown method: no.such.method"


@pytest.mark.parametrize(
    ("params", "close_code", "detail"),
    [
        ({"minProtocol": 1, "maxProtocol": 1}, 1002, "PROTOCOL_MISMATCH"),
        ({"auth": {"token": "wrong"}}, 1008, "AUTH_TOKEN_MISMATCH"),
    ],
)
async def test_refused_connects_close_with_openclaw_codes(
    gw, params: dict[str, Any], close_code: int, detail: str
) -> None:
    async with dial(gw) as ws:
        refused = await connect(ws, **({"auth": {"token": "admin-token"}} | params))
        assert refused["ok"] is False and refused["error"]["details"]["code"] == detail
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == close_code


async def test_first_request_must_be_connect(gw) -> None:
    async with dial(gw) as ws:
        await recv(ws)  # the challenge
        await ws.send(b'{"type":"req","id":"1","method":"health"}')
        refused = await recv(ws)
        assert refused["error"]["message"] == "invalid handshake: first request must be connect"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def reply(ws: Any, request_id: str) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame.get("type") == "res" and frame.get("id") == request_id:
            return frame


async def test_health_is_answered_at_the_edge_with_the_read_scope_checked(gw) -> None:
    """No runtime on this bus: once the default agent is stored, OpenClaw's HealthSummary
    comes from the gateway's replicas and sessions index alone; a session written to KV
    shows in it. A connection that may not read sessions and agents is refused."""
    agents = await gw.host.kv("agents")
    sessions = await gw.host.kv("sessions")
    await agents.put("agent.main", orjson.dumps({"id": "main", "name": "Main", "tools": []}))
    stored = {"key": "agent:main:edge", "agentId": "main", "updatedAt": int(time.time() * 1000)}
    await sessions.put("s.agent=3Amain=3Aedge", orjson.dumps(stored))
    async with dial(gw) as ws:
        await connect(ws, auth={"token": "reader-token"})
        deadline = time.monotonic() + 10
        while True:
            await ws.send(b'{"type":"req","id":"h","method":"health","params":{"probe":true}}')
            summary = await reply(ws, "h")
            # Until the watches caught up, the row asks the owner, which is absent here.
            recent = summary["payload"]["sessions"]["recent"] if summary["ok"] else []
            if "agent:main:edge" in [r["key"] for r in recent]:
                break
            assert time.monotonic() < deadline, summary
            await asyncio.sleep(0.05)
        payload = summary["payload"]
        assert payload["defaultAgentId"] == "main" and payload["agents"][0]["isDefault"]
        assert payload["agents"][0]["sessions"]["count"] >= 1
        assert payload["services"]["ws-gateway"]["ok"] is True
    async with dial(gw) as ws:
        await connect(ws, auth={"token": "reader-token"}, scopes=[])
        await ws.send(b'{"type":"req","id":"h","method":"health"}')
        refused = await reply(ws, "h")
        assert refused["ok"] is False and refused["error"]["code"] == "FORBIDDEN"
        assert refused["error"]["details"]["missingScope"] == "operator.read"


async def test_sessions_list_is_answered_at_the_edge(gw) -> None:
    """No runtime on this bus: OpenClaw's `sessions.list` (ours and `models.list`) comes
    from the gateway's sessions index once it holds the session written to KV."""
    sessions = await gw.host.kv("sessions")
    stored = {"key": "agent:main:listed", "agentId": "main", "updatedAt": 2, "label": "Listed"}
    await sessions.put("s.agent=3Amain=3Alisted", orjson.dumps(stored))
    request = b'{"type":"req","id":"l","method":"sessions.list","params":{"search":"listed"}}'
    async with dial(gw) as ws:
        await connect(ws, auth={"token": "reader-token"})
        deadline = time.monotonic() + 10
        while True:
            await ws.send(request)
            listed = await reply(ws, "l")
            # Until the index is warm, the row asks the owner, which is absent here.
            rows = listed["payload"]["sessions"] if listed["ok"] else []
            if rows:
                break
            assert time.monotonic() < deadline, listed
            await asyncio.sleep(0.05)
        assert [r["key"] for r in rows] == ["agent:main:listed"]
        assert rows[0]["label"] == "Listed" and listed["payload"]["count"] == 1


async def event(ws: Any, name: str, match: Any = lambda payload: True) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame.get("type") == "event" and frame["event"] == name and match(frame["payload"]):
            return frame["payload"]


async def test_sessions_subscribe_is_a_live_feed_of_the_sessions_bucket(gw) -> None:
    sessions = await gw.host.kv("sessions")
    async with dial(gw) as ws:
        await connect(ws, auth={"token": "reader-token"})
        await ws.send(b'{"type":"req","id":"s","method":"sessions.subscribe","params":{}}')
        assert (await reply(ws, "s"))["payload"] == {"subscribed": True}
        stored = {"key": "agent:main:feed", "agentId": "main", "updatedAt": 1, "label": "L"}
        await sessions.put("s.agent=3Amain=3Afeed", orjson.dumps(stored))
        changed = await event(ws, "sessions.changed", lambda p: p["sessionKey"] == stored["key"])
        assert changed["agentId"] == "main" and changed["session"]["label"] == "L"
        assert changed["session"]["displayName"] == "L" and "reason" not in changed
        await sessions.delete("s.agent=3Amain=3Afeed")
        gone = await event(ws, "sessions.changed", lambda p: p.get("reason") == "delete")
        assert gone["sessionKey"] == stored["key"] and gone["agentId"] == "main"


async def test_sessions_messages_subscribe_readmits_chat_events(gw) -> None:
    """A connection that asked only for ticks gets the session's chat events once the UI
    subscribes to its messages; the key comes back canonical."""
    async with dial(gw) as ws:
        await connect(ws, auth={"token": "reader-token"}, subscribe=["tick"])
        await ws.send(
            b'{"type":"req","id":"m","method":"sessions.messages.subscribe","params":{"key":"main"}}'
        )
        joined = await reply(ws, "m")
        assert joined["payload"] == {"subscribed": True, "key": "agent:main:main"}
        marker = f"run-{time.monotonic_ns()}"
        await gw.bus.publish_event(
            "chat.event",
            {"runId": marker, "sessionKey": "agent:main:main", "seq": 1, "state": "delta",
             "delta": "hi"},
        )  # fmt: skip
        chat = await event(ws, "chat", lambda p: p.get("runId") == marker)
        assert chat["deltaText"] == "hi"
        await ws.send(
            b'{"type":"req","id":"u","method":"sessions.messages.unsubscribe","params":{"key":"main"}}'
        )
        assert (await reply(ws, "u"))["payload"] == {"subscribed": False, "key": "agent:main:main"}
        await ws.send(b'{"type":"req","id":"k","method":"sessions.messages.subscribe"}')
        missing = await reply(ws, "k")
        assert missing["ok"] is False and missing["error"]["code"] == "INVALID_REQUEST"


async def test_features_we_lack_answer_as_openclaw_does_without_them(gw) -> None:
    async with dial(gw) as ws:
        hello = await connect(ws, auth={"token": "reader-token"})
        advertised = hello["payload"]["features"]["methods"]
        assert "sessions.subscribe" in advertised and "question.list" not in advertised
        for request_id, method, want in (
            ("q", "question.list", {"questions": []}),
            ("t", "tasks.list", {"tasks": []}),
            ("b", "sessions.branches.list", {"branches": []}),
            ("p", "plugin.approval.list", []),
        ):
            frame = {"type": "req", "id": request_id, "method": method, "params": {}}
            await ws.send(orjson.dumps(frame))
            answered = await reply(ws, request_id)
            assert answered["ok"] is True and answered["payload"] == want, method
        await ws.send(b'{"type":"req","id":"c","method":"sessions.companion.state","params":{}}')
        companion = await reply(ws, "c")
        assert companion["ok"] is False and companion["error"]["code"] == "UNAVAILABLE"
        assert companion["error"]["message"] == "Side chat is unavailable."


async def test_an_openclaw_node_answers_an_invoke_from_a_jsonrpc_operator(gw) -> None:
    """The node side in OpenClaw frames (`paramsJSON` in, `payloadJSON` back), the operator
    on /ws: the same invoke path as our own nodes (docs/openclaw.md, Nodes)."""
    node_id = "oc-node-" + uuid.uuid4().hex[:8]
    client = {"id": "node-host", "version": "2026.9.6", "platform": "linux", "mode": "node"}
    async with dial(gw) as node:
        hello = await connect(
            node,
            auth={"token": "node-token"},
            role="node",
            scopes=[],
            client=client | {"instanceId": node_id},
            caps=["system"],
            commands=["system.which"],
        )
        assert hello["ok"] is True
        offered = set(hello["payload"]["features"]["methods"])
        assert {"node.event", "node.invoke.result"} <= offered
        assert not offered & {"node.invoke", "node.list", "chat.send"}  # operators' methods
        # What the host publishes next, for features we lack: `unknown method`, exactly,
        # and the node stays connected (the invoke below still reaches it).
        for n, method in enumerate(
            ("node.runnerInventory.update", "node.skills.update", "node.pluginTools.update")
        ):
            frame = {"type": "req", "id": f"p{n}", "method": method, "params": {}}
            await node.send(orjson.dumps(frame))
            refused = await recv_reply(node, f"p{n}")
            assert refused["ok"] is False
            assert refused["error"]["code"] == "INVALID_REQUEST"
            assert refused["error"]["message"] == f"unknown method: {method}"

        async def serve() -> dict[str, Any]:
            while True:
                frame = await recv(node)
                if frame.get("event") != "node.invoke.request":
                    continue
                request = frame["payload"]
                # Bad JSON first: an error reply, the socket stays open.
                bad = {"id": request["id"], "ok": True, "payloadJSON": "{nope"}
                await node.send(
                    orjson.dumps(
                        {"type": "req", "id": "r1", "method": "node.invoke.result", "params": bad}
                    )
                )
                refused = await recv_reply(node, "r1")
                assert refused["ok"] is False
                assert refused["error"]["details"]["code"] == "BAD_JSON_FIELD"
                answer = {
                    "id": request["id"],
                    "nodeId": node_id,
                    "ok": True,
                    "payloadJSON": orjson.dumps(
                        {"bins": orjson.loads(request["paramsJSON"])["bins"]}
                    ).decode(),
                }
                await node.send(
                    orjson.dumps(
                        {
                            "type": "req",
                            "id": "r2",
                            "method": "node.invoke.result",
                            "params": answer,
                        }
                    )
                )
                assert (await recv_reply(node, "r2"))["payload"] == {"ok": True}
                return request

        server = asyncio.create_task(serve())
        async with await WsClient.connect(gw.url, token="admin-token") as operator:
            result = await operator.call(
                "node.invoke",
                {"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}},
                timeout=20,
            )
        assert result == {"ok": True, "payload": {"bins": ["sh"]}}
        request = await asyncio.wait_for(server, 5)
        assert request["nodeId"] == node_id and request["command"] == "system.which"
        assert "params" not in request


async def recv_reply(ws: Any, request_id: str) -> dict[str, Any]:
    while True:
        frame = await recv(ws)
        if frame.get("type") == "res" and frame["id"] == request_id:
            return frame
