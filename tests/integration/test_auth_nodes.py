"""Node pairing: request → event → approve (token once) → verify, rename, and a node
connecting with its token."""

from __future__ import annotations

import secrets

import httpx
import pytest

from aisopod.errors import NotFound, Unauthenticated
from tests.integration.auth_support import (
    Admin,
    next_matching,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration


def _node_id() -> str:
    return f"test:node-{secrets.token_hex(4)}"


async def test_node_pairing_end_to_end(stack, admin: Admin) -> None:
    node_id = _node_id()
    params = {"nodeId": node_id, "displayName": "Phone", "platform": "ios", "caps": ["camera"]}
    async with admin.listen("aisopod.evt.node.pair.requested") as requested:
        asked = await admin.call("node.pair.request", params)
        event = await next_matching(requested, lambda e: e["nodeId"] == node_id, 5)
    assert asked["status"] == "pending"
    assert event["requestId"] == asked["requestId"] and event["caps"] == ["camera"]
    merged = await admin.call("node.pair.request", {**params, "commands": ["snap"]})
    assert merged["requestId"] == asked["requestId"]

    listing = await admin.call("node.pair.list", {})
    pending = [p for p in listing["pending"] if p["nodeId"] == node_id]
    assert pending and pending[0]["commands"] == ["snap"]

    async with admin.listen("aisopod.evt.node.pair.resolved") as resolved:
        approved = await admin.call("node.pair.approve", {"requestId": asked["requestId"]})
        event = await next_matching(resolved, lambda e: e["nodeId"] == node_id, 5)
    token = remember(approved["token"])
    assert approved["decision"] == "approved" and token
    assert event == {"requestId": asked["requestId"], "nodeId": node_id, "decision": "approved"}

    assert await admin.call("node.pair.verify", {"nodeId": node_id, "token": token}) == {"ok": True}
    wrong = await admin.call("node.pair.verify", {"nodeId": node_id, "token": "nope"})
    assert wrong == {"ok": False}
    listing = await admin.call("node.pair.list", {})
    assert any(n["nodeId"] == node_id for n in listing["paired"])
    assert token not in str(listing)
    again = await admin.call("node.pair.request", params)
    assert again == {"requestId": asked["requestId"], "status": "approved"}

    renamed = await admin.call("node.rename", {"nodeId": node_id, "displayName": "Kitchen"})
    assert renamed["displayName"] == "Kitchen" and renamed["paired"] is True

    hello = await admin.verify(verify_request(ip=unique_ip(), token=token, role="node"))
    assert hello["principal"] == {
        "id": f"node:{node_id}",
        "role": "node",
        "scopes": [],
        "authMethod": "node_token",
        "deviceId": None,
        "nodeId": node_id,
    }
    as_operator = await admin.verify_error(verify_request(ip=unique_ip(), token=token))
    assert as_operator.detail_code == "UNAUTHORIZED_ROLE"


async def test_node_pairing_rejected_and_unknown(stack, admin: Admin) -> None:
    node_id = _node_id()
    asked = await admin.call("node.pair.request", {"nodeId": node_id})
    rejected = await admin.call("node.pair.reject", {"requestId": asked["requestId"]})
    assert rejected["decision"] == "rejected" and rejected.get("token") is None
    with pytest.raises(NotFound):
        await admin.call("node.pair.approve", {"requestId": asked["requestId"]})
    with pytest.raises(NotFound):
        await admin.call("node.rename", {"nodeId": node_id, "displayName": "x"})
    assert await admin.call("node.pair.verify", {"nodeId": node_id, "token": "x"}) == {"ok": False}


async def test_node_pair_remove_forgets_the_node_and_its_token(stack, admin: Admin) -> None:
    node_id = _node_id()
    asked = await admin.call("node.pair.request", {"nodeId": node_id})
    approved = await admin.call("node.pair.approve", {"requestId": asked["requestId"]})
    token = remember(approved["token"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=10) as http:
        # A node token is no operator credential: known, but refused for the role.
        before = await http.get("/v1/models", headers=headers)
        assert before.status_code == 403, before.text
        async with admin.listen("aisopod.control.connections.close") as orders:
            assert await admin.call("node.pair.remove", {"nodeId": node_id}) == {"ok": True}
            order = await next_matching(
                orders, lambda o: o.get("principalId") == f"node:{node_id}", 5
            )
        assert order["reason"] == "node removed"
        # At once: the token is unknown now (no TTL to wait out).
        after = await http.get("/v1/models", headers=headers)
        assert after.status_code == 401, after.text
    failed = await admin.verify_error(verify_request(ip=unique_ip(), token=token, role="node"))
    assert isinstance(failed, Unauthenticated) and failed.detail_code == "AUTH_TOKEN_MISMATCH"
    assert await admin.call("node.pair.verify", {"nodeId": node_id, "token": token}) == {
        "ok": False
    }
    listing = await admin.call("node.pair.list", {})
    assert all(n["nodeId"] != node_id for n in listing["paired"])
    with pytest.raises(NotFound):
        await admin.call("node.pair.remove", {"nodeId": node_id})
