"""An operator on ws-gateway replica A invokes a node connected to replica B (real stack,
each replica reached on its own port; the invoke crosses NATS between them)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.ws_client import RpcError, WsClient, node_client
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
        headers=env.edge,
        token=env.token,
        role="node",
        scopes=[],
        client=node_client(node_id),
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
        async with await WsClient.connect(
            env.replicas[0], token=env.token, headers=env.edge
        ) as operator:
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


async def _poll(check, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """The first truthy value of `check()`, polled until `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_undeclared_command_is_refused_and_never_reaches_the_node(env) -> None:
    node_id = "itest-undeclared-" + uuid.uuid4().hex[:8]
    async with (
        await WsClient.connect(
            env.replicas[1],
            headers=env.edge,
            token=env.token,
            role="node",
            scopes=[],
            client=node_client(node_id),
            commands=["echo"],
        ) as node,
        await WsClient.connect(env.replicas[0], token=env.token, headers=env.edge) as operator,
    ):
        for command in ("rm-everything", "ECHO"):
            with pytest.raises(RpcError) as info:
                await operator.call(
                    "node.invoke", {"nodeId": node_id, "command": command, "params": {}}
                )
            assert info.value.code == -32602 and info.value.detail == "COMMAND_NOT_DECLARED"
        # The declared command still works, and it is the first request the node sees.
        call = asyncio.create_task(
            operator.call("node.invoke", {"nodeId": node_id, "command": "echo", "params": 1})
        )
        request = (await node.next_event("node.invoke.request", timeout=20))["params"]
        assert request["payload"]["command"] == "echo" and "seq" not in request
        await node.call("node.invoke.result", {"id": request["payload"]["id"], "ok": True})
        assert (await call)["ok"] is True


async def test_direct_system_run_obeys_the_exec_policy(env) -> None:
    node_id = "itest-exec-" + uuid.uuid4().hex[:8]
    async with (
        await WsClient.connect(
            env.url,
            token=env.token,
            role="node",
            scopes=[],
            client=node_client(node_id),
            commands=["system.run"],
        ) as node,
        await WsClient.connect(env.url, token=env.token) as operator,
    ):
        policy = await operator.call("exec.approvals.get")
        assert policy["ask"] != "off"  # the default asks for commands not on the allowlist
        run = {"command": ["/bin/sh", "-lc", "whoami"], "rawCommand": "whoami"}
        with pytest.raises(RpcError) as info:
            await operator.call(
                "node.invoke", {"nodeId": node_id, "command": "system.run", "params": run}
            )
        assert info.value.detail == "EXEC_APPROVAL_REQUIRED"
        await node.call("health")  # a round trip on the node's socket: nothing came before it
        assert not [e for e in node.drain_events() if e["method"] == "node.invoke.request"]


async def test_describe_keeps_a_disconnected_nodes_declaration(env) -> None:
    node_id = "itest-away-" + uuid.uuid4().hex[:8]
    async with await WsClient.connect(env.url, token=env.token) as operator:
        node = await WsClient.connect(
            env.replicas[0],
            headers=env.edge,
            token=env.token,
            role="node",
            scopes=[],
            client=node_client(node_id),
            caps=["camera"],
            commands=["camera.snap", "echo"],
        )

        async def here():  # type: ignore[no-untyped-def]
            try:
                found = await operator.call("node.describe", {"nodeId": node_id})
            except RpcError as exc:  # the operator's replica has not heard of it yet
                if exc.detail != "NODE_NOT_FOUND":
                    raise
                return None
            return found if found["connected"] else None

        described = await _poll(here)  # presence reaches every replica within moments
        assert described["caps"] == ["camera"]
        await node.close()

        async def away():  # type: ignore[no-untyped-def]
            found = await operator.call("node.describe", {"nodeId": node_id})
            return found if not found["connected"] else None

        described = await _poll(away)
        assert described["caps"] == ["camera"]
        assert described["commands"] == ["camera.snap", "echo"]
        assert described["platform"] == "linux"
        listed = (await operator.call("node.list"))["nodes"]
        assert any(n["nodeId"] == node_id and not n["connected"] for n in listed)
        with pytest.raises(RpcError) as info:
            await operator.call("node.invoke", {"nodeId": node_id, "command": "echo"})
        assert info.value.detail == "NOT_CONNECTED"
        with pytest.raises(RpcError) as info:
            await operator.call("node.describe", {"nodeId": "never-seen-" + node_id})
        assert info.value.detail == "NODE_NOT_FOUND"


async def test_node_event_is_broadcast_to_operators(env) -> None:
    node_id = "itest-event-" + uuid.uuid4().hex[:8]
    async with (
        await WsClient.connect(env.url, token=env.token, subscribe=["node.event"]) as operator,
        await WsClient.connect(
            env.url, token=env.token, role="node", scopes=[], client=node_client(node_id)
        ) as node,
    ):
        assert await node.call("node.event", {"event": "battery", "payload": {"pct": 42}}) == {
            "ok": True
        }
        event = await operator.next_event(
            lambda e: (
                e["method"] == "node.event" and e["params"]["payload"].get("nodeId") == node_id
            ),
            timeout=10,
        )
        assert event["params"]["seq"] > 0
        assert event["params"]["payload"] == {
            "nodeId": node_id,
            "event": "battery",
            "payload": {"pct": 42},
        }
        with pytest.raises(RpcError) as info:  # only nodes send node events
            await operator.call("node.event", {"event": "battery"})
        assert info.value.code == -32003
