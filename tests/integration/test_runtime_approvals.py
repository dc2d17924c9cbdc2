"""Exec approvals: requests, decisions by a second client, expiry, allow-always, and an
agent's exec tool call that waits for an operator."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aisopod.errors import Conflict, NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    APPROVER,
    RuntimeClient,
    fake_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def approver(stack) -> AsyncIterator[RuntimeClient]:
    """A second client: another NATS connection acting as another operator."""
    client = await RuntimeClient.connect(stack.nats_url, stack.nats_password("admin"))
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture(loop_scope="session")
async def policy(rt: RuntimeClient) -> AsyncIterator[dict]:
    """The exec policy, restored after the test (tests share the stack)."""
    before = await rt.call("exec.approvals.get", {})
    try:
        yield before
    finally:
        await rt.call(
            "exec.approvals.set", {"ask": before["ask"], "allowlist": before["allowlist"]}
        )


async def test_request_resolved_by_a_second_client(
    rt: RuntimeClient, approver: RuntimeClient, policy: dict
) -> None:
    command = f"touch /tmp/{uuid.uuid4().hex}"
    request = await rt.call(
        "exec.approval.request", {"command": command, "nodeId": "n1"}, as_=APPROVER
    )
    seen = await approver.wait_event("exec.approval.requested", lambda p: p["id"] == request["id"])
    assert seen["command"] == command and seen["expiresAtMs"] == request["expiresAtMs"]
    waiting = asyncio.create_task(
        rt.call(
            "exec.approval.waitDecision", {"id": request["id"], "timeoutMs": 10_000}, as_=APPROVER
        )
    )
    await approver.call(
        "exec.approval.resolve", {"id": request["id"], "decision": "allow-always"}, as_=APPROVER
    )
    assert await waiting == {"id": request["id"], "decision": "allow-always"}
    resolved = await rt.wait_event("exec.approval.resolved", lambda p: p["id"] == request["id"])
    assert resolved == {"id": request["id"], "decision": "allow-always", "resolvedBy": "approver"}
    with pytest.raises(Conflict):
        await rt.call(
            "exec.approval.resolve", {"id": request["id"], "decision": "deny"}, as_=APPROVER
        )
    assert command in (await rt.call("exec.approvals.get", {}))["allowlist"]
    with pytest.raises(NotFound):
        await rt.call("exec.approval.resolve", {"id": "nope", "decision": "deny"}, as_=APPROVER)


async def test_pending_lists_waiting_requests_on_any_replica(rt: RuntimeClient) -> None:
    tag = uuid.uuid4().hex
    first = await rt.call(
        "exec.approval.request",
        {"command": f"ls /tmp/{tag}-1", "cwd": "/tmp", "agentId": "main"},
        as_=APPROVER,
    )
    second = await rt.call("exec.approval.request", {"command": f"ls /tmp/{tag}-2"}, as_=APPROVER)

    async def mine() -> list[dict]:
        listed = (await rt.call("exec.approvals.pending", {}, as_=APPROVER))["approvals"]
        return [a for a in listed if tag in a["command"]]

    # Asked several times: whichever runtime replica answers reads the same KV.
    for _ in range(4):
        pending = await mine()
        assert [a["id"] for a in pending] == [first["id"], second["id"]]
    assert pending[0]["cwd"] == "/tmp" and pending[0]["agentId"] == "main"
    assert pending[0]["expiresAtMs"] == first["expiresAtMs"]
    assert pending[0]["requestedBy"] == "approver" and "status" not in pending[0]

    await rt.call("exec.approval.resolve", {"id": first["id"], "decision": "deny"}, as_=APPROVER)
    assert [a["id"] for a in await mine()] == [second["id"]]
    await rt.call("exec.approval.resolve", {"id": second["id"], "decision": "deny"}, as_=APPROVER)
    assert await mine() == []


async def test_unanswered_request_expires_to_deny(rt: RuntimeClient) -> None:
    # The early wait must reach the runtime before the request's expiry less its own 50 ms,
    # or it settles the expiry itself: 2 s leaves room for a busy machine's round trips.
    request = await rt.call(
        "exec.approval.request", {"command": "rm -rf /tmp/x", "timeoutMs": 2000}, as_=APPROVER
    )
    early = await rt.call(
        "exec.approval.waitDecision", {"id": request["id"], "timeoutMs": 50}, as_=APPROVER
    )
    assert early == {"id": request["id"], "decision": None}
    resolved = await rt.wait_event("exec.approval.resolved", lambda p: p["id"] == request["id"])
    assert resolved["decision"] == "deny" and resolved["resolvedBy"] == "expiry"
    final = await rt.call("exec.approval.waitDecision", {"id": request["id"]}, as_=APPROVER)
    assert final["decision"] == "deny"


async def _exec_run(rt: RuntimeClient, command: str) -> tuple[str, str, dict]:
    key = await fake_session(rt, "exec")
    args = json.dumps({"command": command, "nodeId": "node-under-test"})
    started = await rt.call("chat.send", {"sessionKey": key, "message": f"[[tool:exec {args}]]"})
    run_id = started["runId"]
    request = await rt.wait_event("exec.approval.requested", lambda p: p.get("runId") == run_id)
    return key, run_id, request


async def test_agent_exec_waits_for_approval_then_is_denied(
    rt: RuntimeClient, approver: RuntimeClient, policy: dict
) -> None:
    command = f"cat /etc/{uuid.uuid4().hex}"
    key, run_id, request = await _exec_run(rt, command)
    assert request["command"] == command and request["sessionKey"] == key
    assert request["toolCallId"]
    # The run waits on the operator: still running, no final answer.
    pending = await rt.call("agent.wait", {"runId": run_id, "timeoutMs": 300})
    assert pending["status"] == "timeout" and "endedAt" not in pending
    assert not [p for p in rt.of_run(run_id) if p["state"] == "final"]
    await approver.call(
        "exec.approval.resolve", {"id": request["id"], "decision": "deny"}, as_=APPROVER
    )
    done = await rt.call("agent.wait", {"runId": run_id, "timeoutMs": 10_000})
    assert done["status"] == "ok"
    await rt.lifecycle_end(run_id)  # the agent.event callbacks have caught up to the end
    tool = [p["data"] for p in rt.of_run(run_id, "agent.event") if p["stream"] == "tool"]
    assert [t["phase"] for t in tool] == ["start", "error"]
    assert tool[1]["result"]["approval"]["decision"] == "deny"
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert messages[2]["role"] == "tool" and "denied" in messages[2]["content"]
    assert messages[3]["content"].startswith("tool exec returned:")


async def test_agent_exec_approved_goes_to_the_node(
    rt: RuntimeClient, approver: RuntimeClient, policy: dict
) -> None:
    command = f"ls /srv/{uuid.uuid4().hex}"
    _, run_id, request = await _exec_run(rt, command)
    await approver.call(
        "exec.approval.resolve", {"id": request["id"], "decision": "allow-once"}, as_=APPROVER
    )
    done = await rt.call("agent.wait", {"runId": run_id, "timeoutMs": 20_000})
    assert done["status"] == "ok"
    await rt.lifecycle_end(run_id)  # the agent.event callbacks have caught up to the end
    tool = [p["data"] for p in rt.of_run(run_id, "agent.event") if p["stream"] == "tool"]
    # Approved, then sent to node.invoke: no node `node-under-test` is connected here.
    assert tool[-1]["phase"] == "error"
    assert tool[-1]["result"]["approval"] == {
        "required": True,
        "id": request["id"],
        "decision": "allow-once",
    }
    assert "node.invoke failed" in tool[-1]["result"]["error"]
    assert command not in (await rt.call("exec.approvals.get", {}))["allowlist"]


async def test_allowlisted_command_needs_no_approval(rt: RuntimeClient, policy: dict) -> None:
    command = f"uptime-{uuid.uuid4().hex[:6]}"
    await rt.call(
        "exec.approvals.set", {"ask": "on-miss", "allowlist": [*policy["allowlist"], f"{command}*"]}
    )
    result = await rt.call(
        "tools.invoke", {"tool": "exec", "args": {"command": f"{command} -p", "nodeId": "n-x"}}
    )
    assert result["ok"] is False
    assert result["result"]["approval"] == {"required": False}
    assert "node.invoke failed" in result["result"]["error"]
