"""An operator on ws-gateway replica A invokes a node connected to replica B (real stack,
each replica reached on its own port; the invoke crosses NATS between them)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.ws_client import RpcError, WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def test_operator_on_replica_a_invokes_node_on_replica_b(env) -> None:
    assert len(env.replicas) >= 2
    node_id = "itest-" + uuid.uuid4().hex[:8]
    node = await WsClient.connect(
        env.replicas[1],
        token=env.token,
        role="node",
        scopes=[],
        client={
            "id": "itest-node",
            "version": "1",
            "platform": "linux",
            "mode": "node",
            "instanceId": node_id,
        },
        commands=["echo"],
    )
    assert node.hello["server"]["instance"] != ""

    async def serve() -> None:
        request = await node.next_event("node.invoke.request", timeout=20)
        params = request["params"]["payload"]
        await node.call(
            "node.invoke.result", {"id": params["id"], "ok": True, "payload": params["params"]}
        )

    server = asyncio.create_task(serve())
    try:
        async with await WsClient.connect(env.replicas[0], token=env.token) as operator:
            assert operator.hello["server"]["instance"] != node.hello["server"]["instance"]
            nodes = (await operator.call("node.list"))["nodes"]
            assert any(n["nodeId"] == node_id and n["connected"] for n in nodes)
            result = await operator.call(
                "node.invoke",
                {
                    "nodeId": node_id,
                    "command": "echo",
                    "params": {"hi": 1},
                    "idempotencyKey": uuid.uuid4().hex,
                },
            )
            assert result == {"ok": True, "payload": {"hi": 1}}
            await server
            with pytest.raises(RpcError) as info:
                await operator.call("node.invoke", {"nodeId": "absent-" + node_id, "command": "x"})
            assert info.value.detail == "NOT_CONNECTED"
    finally:
        server.cancel()
        await node.close()
