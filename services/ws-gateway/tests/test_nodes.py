"""Nodes: declare, list, invoke across replicas, results, timeouts, idempotency, events."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from aisopod.conformance import misdeclared_handlers
from aisopod.principal import Principal
from aisopod.services import ServiceName
from aisopod_ws_gateway.methods import CONNECTION_ONLY, bus_handlers
from tests.support.ws_client import RpcError, WsClient

from .conftest import SEED, start_gateway

OPERATOR = Principal(id="runtime-tool", scopes=("operator.admin",), auth_method="system")


@pytest.fixture(scope="module")
async def replica_b(gw, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A second ws-gateway replica on the same NATS and prefix: what Traefik balances."""
    seed = tmp_path_factory.mktemp("seed-b") / "aisopod.json"
    seed.write_text(json.dumps(SEED))
    _host, stop, task, port = await start_gateway(
        gw.nc.connected_url.geturl(), gw.prefix, seed, "ws-unit-2"
    )
    yield f"ws://127.0.0.1:{port}/ws"
    stop.set()
    await asyncio.wait_for(task, 30)


async def _node(url: str, node_id: str) -> WsClient:
    return await WsClient.connect(
        url,
        token="node-token",
        role="node",
        scopes=[],
        client={
            "id": "node-app",
            "version": "1",
            "platform": "linux",
            "mode": "node",
            "instanceId": node_id,
            "displayName": f"Node {node_id}",
        },
        caps=["camera"],
        commands=["echo", "never"],
    )


async def _serve_node(node: WsClient, answered: list[dict]) -> None:
    """The node's side: answer `echo` with its params, ignore `never`."""
    while True:
        request = await node.next_event("node.invoke.request", timeout=30)
        params = request["params"]["payload"]
        answered.append(params)
        if params["command"] == "echo":
            await node.call(
                "node.invoke.result", {"id": params["id"], "ok": True, "payload": params["params"]}
            )


async def test_operator_on_a_invokes_a_node_on_b(gw, replica_b) -> None:
    node_id = "n-" + uuid.uuid4().hex[:8]
    answered: list[dict] = []
    async with await _node(replica_b, node_id) as node:
        server = asyncio.create_task(_serve_node(node, answered))
        async with await WsClient.connect(gw.url, token="admin-token") as operator:
            listed = await _eventually_listed(operator, node_id)
            assert listed["connected"] is True and listed["commands"] == ["echo", "never"]
            assert listed["displayName"] == f"Node {node_id}"
            assert listed["caps"] == ["camera"] and listed["paired"] is False
            result = await operator.call(
                "node.invoke", {"nodeId": node_id, "command": "echo", "params": {"x": 1}}
            )
            assert result == {"ok": True, "payload": {"x": 1}}
            assert answered[-1]["nodeId"] == node_id and answered[-1]["timeoutMs"] == 30_000
            # The runtime's agent tools invoke nodes through the bus.
            via_bus = await gw.bus.call(
                "node.invoke",
                {"nodeId": node_id, "command": "echo", "params": 2},
                principal=OPERATOR,
            )
            assert via_bus == {"ok": True, "payload": 2}
            described = await operator.call("node.describe", {"nodeId": node_id})
            assert described["nodeId"] == node_id
        server.cancel()


async def test_a_node_is_listed_on_every_replica_as_soon_as_its_hello_is_out(gw, replica_b) -> None:
    """No polling: the node's presence entry is in KV before its hello, and a listing on
    another replica first catches its cache up with the bucket (presence.py). The operator
    is connected first, so its call follows the node's hello as closely as a client can."""
    async with await WsClient.connect(gw.url, token="admin-token") as operator:
        for _ in range(2):
            node_id = "n-" + uuid.uuid4().hex[:8]
            async with await _node(replica_b, node_id):
                nodes = (await operator.call("node.list"))["nodes"]
                assert [n["connected"] for n in nodes if n["nodeId"] == node_id] == [True]
                via_bus = await gw.bus.call(
                    "node.describe", {"nodeId": node_id}, principal=OPERATOR
                )
                assert via_bus["connected"] is True


async def _eventually_listed(ws: WsClient, node_id: str) -> dict:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        nodes = (await ws.call("node.list"))["nodes"]
        found = [n for n in nodes if n["nodeId"] == node_id]
        if found:
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{node_id} never listed")
        await asyncio.sleep(0.05)


async def test_invoke_idempotency_key_runs_once(gw) -> None:
    node_id = "n-" + uuid.uuid4().hex[:8]
    answered: list[dict] = []
    async with await _node(gw.url, node_id) as node:
        server = asyncio.create_task(_serve_node(node, answered))
        async with await WsClient.connect(gw.url, token="admin-token") as operator:
            params = {
                "nodeId": node_id,
                "command": "echo",
                "params": "once",
                "idempotencyKey": uuid.uuid4().hex,
            }
            first = await operator.call("node.invoke", params)
            second = await operator.call("node.invoke", params)
            assert first == second == {"ok": True, "payload": "once"}
            assert len(answered) == 1
        server.cancel()


async def test_invoke_timeout_and_not_connected(gw) -> None:
    node_id = "n-" + uuid.uuid4().hex[:8]
    async with (
        await _node(gw.url, node_id) as node,
        await WsClient.connect(gw.url, token="admin-token") as operator,
    ):
        with pytest.raises(RpcError) as info:
            await operator.call(
                "node.invoke", {"nodeId": node_id, "command": "never", "timeoutMs": 200}
            )
        assert info.value.code == -32008
        request = await node.next_event("node.invoke.request", timeout=5)
        with pytest.raises(RpcError) as late:  # the invoke is gone once it timed out
            await node.call(
                "node.invoke.result", {"id": request["params"]["payload"]["id"], "ok": True}
            )
        assert late.value.code == -32004
    async with await WsClient.connect(gw.url, token="admin-token") as operator:
        with pytest.raises(RpcError) as info:
            await operator.call("node.invoke", {"nodeId": "nobody-here", "command": "x"})
        assert info.value.code == -32013 and info.value.detail == "NOT_CONNECTED"
        with pytest.raises(RpcError) as info:
            await operator.call("node.describe", {"nodeId": "nobody-here"})
        assert info.value.code == -32004


async def test_node_disconnect_fails_pending_invokes(gw) -> None:
    node_id = "n-" + uuid.uuid4().hex[:8]
    node = await _node(gw.url, node_id)
    async with await WsClient.connect(gw.url, token="admin-token") as operator:
        pending = asyncio.create_task(
            operator.call("node.invoke", {"nodeId": node_id, "command": "never"})
        )
        await node.next_event("node.invoke.request", timeout=5)
        await node.close()
        with pytest.raises(RpcError) as info:
            await pending
        assert info.value.detail == "NOT_CONNECTED"


async def test_node_event_is_broadcast_to_operators(gw) -> None:
    node_id = "n-" + uuid.uuid4().hex[:8]
    async with (
        await WsClient.connect(
            gw.url, token="reader-token", scopes=["operator.read"], subscribe=["node.event"]
        ) as operator,
        await _node(gw.url, node_id) as node,
    ):
        assert await node.call("node.event", {"event": "battery", "payload": {"pct": 40}}) == {
            "ok": True
        }
        event = await operator.next_event("node.event", timeout=5)
        assert event["params"]["payload"] == {
            "nodeId": node_id,
            "event": "battery",
            "payload": {"pct": 40},
        }
        with pytest.raises(RpcError) as info:  # nodes may not call operator methods
            await node.call("system-presence")
        assert info.value.detail == "UNAUTHORIZED_ROLE"


async def test_bus_handlers_return_their_result_models(gw) -> None:
    """The methods ws-gateway serves over the bus (`connect` is the connection's own)."""
    handlers = bus_handlers(gw.gateway)
    assert (
        misdeclared_handlers(ServiceName.WS_GATEWAY, handlers, skip=frozenset(CONNECTION_ONLY))
        == []
    )
