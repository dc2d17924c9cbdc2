"""A node's own exec policy (`exec.approvals.node.get`/`set`): compare-and-set writes, its
precedence over the gateway-wide policy for the agent's exec tool and for a client's direct
`system.run`, allow-always landing in the node's allowlist, and bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aisopod.errors import Conflict, InvalidParams
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    APPROVER,
    RuntimeClient,
    rt_fixture,
)
from tests.support.ws_client import RpcError, WsClient, node_client
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_policy(rt: RuntimeClient) -> AsyncIterator[dict]:
    """The gateway-wide policy, restored after the test (tests share the stack)."""
    before = await rt.call("exec.approvals.get", {})
    try:
        yield before
    finally:
        await rt.call(
            "exec.approvals.set", {"ask": before["ask"], "allowlist": before["allowlist"]}
        )


def _node_id() -> str:
    return "itest-policy-" + uuid.uuid4().hex[:8]


async def test_set_get_clear_with_compare_and_set(env: WsStack) -> None:
    node_id = _node_id()
    async with await WsClient.connect(env.url, token=env.token) as operator:
        read = await operator.call("exec.approvals.get")
        gateway = {"ask": read["ask"], "allowlist": read["allowlist"]}
        fresh = await operator.call("exec.approvals.node.get", {"nodeId": node_id})
        assert fresh == {
            "nodeId": node_id,
            "policy": None,
            "hash": None,
            "effective": gateway,
            "source": "gateway",
            "updatedAtMs": None,
            "updatedBy": None,
        }
        own = {"ask": "always", "allowlist": ["ls", "ls"]}
        created = await operator.call(
            "exec.approvals.node.set", {"nodeId": node_id, "policy": own, "baseHash": None}
        )
        assert created["policy"] == {"ask": "always", "allowlist": ["ls"]}
        assert created["effective"] == created["policy"] and created["source"] == "node"
        assert len(created["hash"]) == 64 and created["updatedBy"]
        assert await operator.call("exec.approvals.node.get", {"nodeId": node_id}) == created

        # Another operator's write based on "no policy yet" loses, and changes nothing.
        with pytest.raises(RpcError) as stale:
            await operator.call(
                "exec.approvals.node.set",
                {"nodeId": node_id, "policy": {"ask": "off"}, "baseHash": None},
            )
        assert stale.value.detail == "POLICY_CHANGED"
        with pytest.raises(RpcError) as wrong:
            await operator.call(
                "exec.approvals.node.set",
                {"nodeId": node_id, "policy": {"ask": "off"}, "baseHash": "0" * 64},
            )
        assert wrong.value.detail == "POLICY_CHANGED"
        assert await operator.call("exec.approvals.node.get", {"nodeId": node_id}) == created

        updated = await operator.call(
            "exec.approvals.node.set",
            {"nodeId": node_id, "policy": {"ask": "off"}, "baseHash": created["hash"]},
        )
        assert updated["policy"] == {"ask": "off", "allowlist": []}
        assert updated["hash"] != created["hash"]

        cleared = await operator.call(
            "exec.approvals.node.set",
            {"nodeId": node_id, "policy": None, "baseHash": updated["hash"]},
        )
        assert cleared["policy"] is None and cleared["source"] == "gateway"
        assert cleared["effective"] == gateway


async def test_bad_input_is_refused(env: WsStack) -> None:
    async with await WsClient.connect(env.url, token=env.token) as operator:
        for params in (
            {"nodeId": "has space", "policy": None},
            {"nodeId": _node_id()},  # `policy` is required: null clears, absent is a mistake
            {"nodeId": _node_id(), "policy": {"ask": "sometimes"}},
            {"nodeId": _node_id(), "policy": {"ask": "off"}, "baseHash": "abc"},
        ):
            with pytest.raises(RpcError) as info:
                await operator.call("exec.approvals.node.set", params)
            assert info.value.code == InvalidParams.code, params
        with pytest.raises(RpcError) as info:
            await operator.call("exec.approvals.node.get", {})
        assert info.value.code == InvalidParams.code


async def test_gateway_policy_write_with_base_hash_is_compare_and_set(
    rt: RuntimeClient, gateway_policy: dict
) -> None:
    read = gateway_policy
    assert len(read["hash"]) == 64
    extra = f"itest-cas-{uuid.uuid4().hex[:6]}"
    mine = {"ask": "on-miss", "allowlist": [*read["allowlist"], extra]}
    written = await rt.call("exec.approvals.set", {**mine, "baseHash": read["hash"]})
    assert written["allowlist"] == mine["allowlist"] and written["hash"] != read["hash"]
    assert await rt.call("exec.approvals.get", {}) == written

    # A second editor still holding the first read loses, and changes nothing.
    with pytest.raises(Conflict) as stale:
        await rt.call(
            "exec.approvals.set", {"ask": "off", "allowlist": [], "baseHash": read["hash"]}
        )
    assert stale.value.detail_code == "POLICY_CHANGED"
    assert await rt.call("exec.approvals.get", {}) == written

    # Without baseHash the write replaces whatever is there (the old behaviour).
    plain = await rt.call("exec.approvals.set", {"ask": read["ask"], "allowlist": []})
    assert plain["allowlist"] == []
    assert plain == await rt.call("exec.approvals.get", {})
    with pytest.raises(InvalidParams):
        await rt.call("exec.approvals.set", {"ask": "on-miss", "allowlist": [], "baseHash": "xyz"})


async def test_node_policy_decides_the_exec_tool(rt: RuntimeClient, gateway_policy: dict) -> None:
    tag = uuid.uuid4().hex[:6]
    strict, other = _node_id(), _node_id()
    command = f"uptime-{tag} -p"
    # Gateway-wide: this command is allowlisted. The strict node asks for everything.
    await rt.call(
        "exec.approvals.set",
        {"ask": "on-miss", "allowlist": [*gateway_policy["allowlist"], f"uptime-{tag}*"]},
    )
    await rt.call("exec.approvals.node.set", {"nodeId": strict, "policy": {"ask": "always"}})
    try:
        free = await rt.call(
            "tools.invoke", {"tool": "exec", "args": {"command": command, "nodeId": other}}
        )
        assert free["result"]["approval"] == {"required": False}

        invoked = rt.call(
            "tools.invoke", {"tool": "exec", "args": {"command": command, "nodeId": strict}}
        )
        task = asyncio.ensure_future(invoked)
        request = await rt.wait_event(
            "exec.approval.requested",
            lambda p: p["command"] == command and p.get("nodeId") == strict,
        )
        await rt.call(
            "exec.approval.resolve", {"id": request["id"], "decision": "deny"}, as_=APPROVER
        )
        denied = await task
        assert denied["ok"] is False
        assert denied["result"]["approval"]["decision"] == "deny"
    finally:
        await rt.call("exec.approvals.node.set", {"nodeId": strict, "policy": None})


async def test_allow_always_goes_to_the_nodes_allowlist(
    rt: RuntimeClient, gateway_policy: dict
) -> None:
    node_id = _node_id()
    command = f"df -h /tmp/{uuid.uuid4().hex[:6]}"
    await rt.call("exec.approvals.node.set", {"nodeId": node_id, "policy": {"ask": "on-miss"}})
    try:
        request = await rt.call(
            "exec.approval.request", {"command": command, "nodeId": node_id}, as_=APPROVER
        )
        await rt.call(
            "exec.approval.resolve",
            {"id": request["id"], "decision": "allow-always"},
            as_=APPROVER,
        )
        node = await rt.call("exec.approvals.node.get", {"nodeId": node_id})
        assert node["policy"]["allowlist"] == [command]
        assert command not in (await rt.call("exec.approvals.get", {}))["allowlist"]
    finally:
        await rt.call("exec.approvals.node.set", {"nodeId": node_id, "policy": None})


async def test_direct_system_run_obeys_the_nodes_own_policy(env: WsStack) -> None:
    node_id = _node_id()
    run = {"command": ["/bin/sh", "-lc", "whoami"], "rawCommand": "whoami"}
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
        gateway = await operator.call("exec.approvals.get")
        assert gateway["ask"] != "off" and "whoami" not in gateway["allowlist"]
        with pytest.raises(RpcError) as info:
            await operator.call(
                "node.invoke", {"nodeId": node_id, "command": "system.run", "params": run}
            )
        assert info.value.detail == "EXEC_APPROVAL_REQUIRED"

        # This node's own policy allows `whoami`: the invoke reaches the node.
        await operator.call(
            "exec.approvals.node.set",
            {"nodeId": node_id, "policy": {"ask": "on-miss", "allowlist": ["whoami"]}},
        )
        try:
            call = asyncio.ensure_future(
                operator.call(
                    "node.invoke", {"nodeId": node_id, "command": "system.run", "params": run}
                )
            )
            request = (await node.next_event("node.invoke.request", timeout=20))["params"]
            assert request["payload"]["command"] == "system.run"
            await node.call(
                "node.invoke.result",
                {"id": request["payload"]["id"], "ok": True, "payload": {"stdout": "me\n"}},
            )
            assert (await call)["ok"] is True
        finally:
            await operator.call("exec.approvals.node.set", {"nodeId": node_id, "policy": None})
