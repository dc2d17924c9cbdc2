"""`/openclaw` over a real socket against the in-process gateway (real NATS): the codec is
chosen by the upgrade path, the handshake and the close codes (docs/openclaw.md)."""

from __future__ import annotations

import asyncio
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
