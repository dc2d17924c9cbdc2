"""Device identity and pairing against the real auth service (NATS `auth.verify` as the
ws-gateway calls it, and the device.* methods as an operator calls them).

Signature cases, pairing from request to an approved connect with the issued token, scope
upgrades, and revoke / rotate / remove closing live connections (the closing order the
ws-gateways act on).
"""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aisopod.errors import InvalidParams, NotFound
from tests.integration.auth_support import (
    Admin,
    Device,
    b64url,
    next_matching,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration

READ = ["operator.read"]
READ_WRITE = ["operator.read", "operator.write"]


async def _pair(admin: Admin, stack, device: Device, scopes: list[str]) -> str:
    """Pair `device` (admin token + proof), approve, and return the token its next
    signed connect receives."""
    ip = unique_ip()
    ask = verify_request(ip=ip, token=stack.admin_token, device=device, scopes=scopes)
    refused = await admin.verify_error(ask)
    assert refused.name == "NOT_PAIRED"
    await admin.call("device.pair.approve", {"requestId": refused.data["requestId"]})
    hello = await admin.verify(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=scopes)
    )
    token = remember(hello["deviceToken"])
    assert token
    return token


# -- signature cases -------------------------------------------------------------------
def _case(device: Device, nonce: str, case: str) -> dict:
    now = int(time.time() * 1000)
    if case == "bad_signature":
        proof = device.proof(nonce, scopes=READ)
        proof["signature"] = b64url(secrets.token_bytes(64))
        return proof
    if case == "other_nonce_claimed":
        return device.proof(secrets.token_urlsafe(12), scopes=READ)
    if case == "other_nonce_signed":
        return device.proof(nonce, scopes=READ, sign_nonce="another-socket-nonce")
    if case == "expired":
        return device.proof(nonce, scopes=READ, signed_at=now - 3 * 60_000)
    if case == "future":
        return device.proof(nonce, scopes=READ, signed_at=now + 3 * 60_000)
    if case == "id_not_the_key":
        other = Device()
        return device.proof(nonce, scopes=READ, id=other.id, sign_id=other.id)
    if case == "wrong_key_type":
        p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
        raw = p256.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return device.proof(nonce, scopes=READ, publicKey=b64url(raw))
    if case == "scopes_not_as_signed":
        return device.proof(nonce, scopes=["operator.read", "operator.admin"])
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad_signature", "DEVICE_SIGNATURE_INVALID"),
        ("other_nonce_claimed", "DEVICE_NONCE_MISMATCH"),
        ("other_nonce_signed", "DEVICE_SIGNATURE_INVALID"),
        ("expired", "DEVICE_SIGNATURE_EXPIRED"),
        ("future", "DEVICE_SIGNATURE_EXPIRED"),
        ("id_not_the_key", "DEVICE_ID_MISMATCH"),
        ("wrong_key_type", "DEVICE_KEY_INVALID"),
        ("scopes_not_as_signed", "DEVICE_SIGNATURE_INVALID"),
    ],
)
async def test_device_signature_cases(stack, admin: Admin, case: str, code: str) -> None:
    device = Device()
    nonce = secrets.token_urlsafe(12)
    request = verify_request(
        ip=unique_ip(),
        token=stack.admin_token,
        scopes=READ,
        nonce=nonce,
        proof=_case(device, nonce, case),
    )
    error = await admin.verify_error(request)
    assert (error.name, error.detail_code) == ("UNAUTHENTICATED", code)


async def test_valid_signature_of_an_unknown_device_asks_for_pairing(stack, admin: Admin) -> None:
    device = Device()
    async with admin.listen("aisopod.evt.device.pair.requested") as events:
        refused = await admin.verify_error(
            verify_request(ip=unique_ip(), token=stack.admin_token, device=device, scopes=READ)
        )
        assert refused.name == "NOT_PAIRED"
        request_id = refused.data["requestId"]
        event = await next_matching(events, lambda e: e["deviceId"] == device.id, 5)
    assert event["requestId"] == request_id
    assert event["role"] == "operator" and event["scopes"] == READ
    # Asking again merges into the same request.
    again = await admin.verify_error(
        verify_request(ip=unique_ip(), token=stack.admin_token, device=device, scopes=READ)
    )
    assert again.data["requestId"] == request_id
    listing = await admin.call("device.pair.list", {})
    pending = [p for p in listing["pending"] if p["deviceId"] == device.id]
    assert [p["requestId"] for p in pending] == [request_id]
    assert "token" not in str(listing).lower().replace("devicetoken", "")
    # Rejected: the request is gone, the device is not paired, the next ask is new.
    async with admin.listen("aisopod.evt.device.pair.resolved") as resolved:
        decision = await admin.call("device.pair.reject", {"requestId": request_id})
        assert decision == {"requestId": request_id, "deviceId": device.id, "decision": "rejected"}
        event = await next_matching(resolved, lambda e: e["requestId"] == request_id, 5)
        assert event["decision"] == "rejected"
    with pytest.raises(NotFound):
        await admin.call("device.pair.approve", {"requestId": request_id})
    fresh = await admin.verify_error(
        verify_request(ip=unique_ip(), token=stack.admin_token, device=device, scopes=READ)
    )
    assert fresh.data["requestId"] != request_id


# -- pairing end to end ----------------------------------------------------------------
async def test_pairing_request_approve_connect_with_issued_token(stack, admin: Admin) -> None:
    device = Device()
    ip = unique_ip()
    refused = await admin.verify_error(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ_WRITE)
    )
    request_id = refused.data["requestId"]
    async with admin.listen("aisopod.evt.device.pair.resolved") as resolved:
        decision = await admin.call(
            "device.pair.approve", {"requestId": request_id, "scopes": READ_WRITE}
        )
        assert decision == {"requestId": request_id, "deviceId": device.id, "decision": "approved"}
        await next_matching(resolved, lambda e: e["requestId"] == request_id, 5)

    # The next signed connect receives the device token, once.
    hello = await admin.verify(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ_WRITE)
    )
    token = remember(hello["deviceToken"])
    assert token and len(token) >= 43
    assert hello["principal"]["deviceId"] == device.id
    assert hello["principal"]["scopes"] == READ_WRITE
    again = await admin.verify(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ_WRITE)
    )
    assert again["deviceToken"] is None

    # Connect with the issued token (and the proof), then with the token alone.
    with_token = await admin.verify(
        verify_request(ip=ip, device_token=token, device=device, scopes=READ)
    )
    assert with_token["principal"] == {
        "id": f"device:{device.id}",
        "role": "operator",
        "scopes": READ,
        "authMethod": "device_token",
        "deviceId": device.id,
        "nodeId": None,
    }
    alone = await admin.verify(verify_request(ip=ip, device_token=token, scopes=READ_WRITE))
    assert alone["principal"]["scopes"] == READ_WRITE

    deadline = time.monotonic() + 30
    while True:  # lastSeenAt is recorded off the verification path
        listing = await admin.call("device.pair.list", {})
        paired = [d for d in listing["paired"] if d["deviceId"] == device.id]
        if (paired and paired[0]["lastSeenAt"]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert paired and paired[0]["roles"] == ["operator"] and paired[0]["scopes"] == READ_WRITE
    assert paired[0]["lastSeenAt"] >= paired[0]["pairedAt"]
    assert token not in str(listing)
    # Another device cannot use this device's token.
    thief = await admin.verify_error(
        verify_request(ip=unique_ip(), device_token=token, device=Device(), scopes=READ)
    )
    assert thief.detail_code == "AUTH_DEVICE_TOKEN_INVALID"


async def test_scope_upgrade_asks_again(stack, admin: Admin) -> None:
    device = Device()
    token = await _pair(admin, stack, device, READ)
    ip = unique_ip()
    first = await admin.call("device.pair.list", {})
    assert not [p for p in first["pending"] if p["deviceId"] == device.id]

    upgrade = await admin.verify_error(
        verify_request(ip=ip, device_token=token, device=device, scopes=READ_WRITE)
    )
    assert upgrade.name == "NOT_PAIRED"
    listing = await admin.call("device.pair.list", {})
    pending = [p for p in listing["pending"] if p["deviceId"] == device.id]
    assert [p["requestId"] for p in pending] == [upgrade.data["requestId"]]
    assert pending[0]["scopes"] == READ_WRITE
    # Within the approved scopes the device still connects meanwhile.
    meanwhile = await admin.verify(
        verify_request(ip=ip, device_token=token, device=device, scopes=READ)
    )
    assert meanwhile["principal"]["scopes"] == READ

    await admin.call("device.pair.approve", {"requestId": upgrade.data["requestId"]})
    upgraded = await admin.verify(
        verify_request(ip=ip, device_token=token, device=device, scopes=READ_WRITE)
    )
    assert upgraded["principal"]["scopes"] == READ_WRITE
    assert upgraded["deviceToken"] is None  # the same token carries the new scopes


async def test_approval_can_narrow_scopes(stack, admin: Admin) -> None:
    device = Device()
    ip = unique_ip()
    refused = await admin.verify_error(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ_WRITE)
    )
    await admin.call(
        "device.pair.approve",
        {"requestId": refused.data["requestId"], "scopes": ["operator.read", "operator.admin"]},
    )
    narrowed = await admin.verify(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ)
    )
    assert narrowed["principal"]["scopes"] == READ
    wider = await admin.verify_error(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ_WRITE)
    )
    assert wider.name == "NOT_PAIRED"


# -- tokens: rotate, revoke, remove ----------------------------------------------------
async def test_rotate_issues_a_new_token_and_closes_users_of_the_old(stack, admin: Admin) -> None:
    device = Device()
    old = await _pair(admin, stack, device, READ_WRITE)
    async with admin.listen("aisopod.control.connections.close") as closes:
        rotated = await admin.call(
            "device.token.rotate", {"deviceId": device.id, "role": "operator", "scopes": READ}
        )
        order = await next_matching(closes, lambda o: o.get("deviceId") == device.id, 1.0)
    new = remember(rotated["token"])
    assert rotated["deviceId"] == device.id and rotated["scopes"] == READ and new != old
    assert order["role"] == "operator"
    assert order["principalId"] == f"device:{device.id}"
    assert order["code"] == 1008

    stale = await admin.verify_error(verify_request(ip=unique_ip(), device_token=old))
    assert stale.detail_code == "AUTH_DEVICE_TOKEN_INVALID"
    fresh = await admin.verify(verify_request(ip=unique_ip(), device_token=new, scopes=READ_WRITE))
    assert fresh["principal"]["scopes"] == READ  # the rotated token carries only read

    with pytest.raises(InvalidParams):
        await admin.call(
            "device.token.rotate",
            {"deviceId": device.id, "role": "operator", "scopes": ["operator.admin"]},
        )
    with pytest.raises(NotFound):
        await admin.call("device.token.rotate", {"deviceId": device.id, "role": "node"})


async def test_revoke_closes_users_and_refuses_the_token(stack, admin: Admin) -> None:
    device = Device()
    token = await _pair(admin, stack, device, READ)
    async with admin.listen("aisopod.control.connections.close") as closes:
        revoked = await admin.call(
            "device.token.revoke", {"deviceId": device.id, "role": "operator"}
        )
        order = await next_matching(closes, lambda o: o.get("deviceId") == device.id, 1.0)
    assert revoked["revokedAt"] > 0
    assert order["role"] == "operator" and order["principalId"] == f"device:{device.id}"
    refused = await admin.verify_error(verify_request(ip=unique_ip(), device_token=token))
    assert refused.detail_code == "AUTH_DEVICE_TOKEN_INVALID"
    # The approval stays: with the shared token and its proof the device still connects.
    still = await admin.verify(
        verify_request(ip=unique_ip(), token=stack.admin_token, device=device, scopes=READ)
    )
    assert still["principal"]["deviceId"] == device.id


async def test_remove_unpairs_and_closes_every_connection_of_the_device(
    stack, admin: Admin
) -> None:
    device = Device()
    token = await _pair(admin, stack, device, READ)
    async with admin.listen("aisopod.control.connections.close") as closes:
        assert await admin.call("device.pair.remove", {"deviceId": device.id}) == {"ok": True}
        order = await next_matching(closes, lambda o: o.get("deviceId") == device.id, 1.0)
    assert "role" not in order and "principalId" not in order
    refused = await admin.verify_error(verify_request(ip=unique_ip(), device_token=token))
    assert refused.detail_code == "AUTH_DEVICE_TOKEN_INVALID"
    again = await admin.verify_error(
        verify_request(ip=unique_ip(), token=stack.admin_token, device=device, scopes=READ)
    )
    assert again.name == "NOT_PAIRED"
    with pytest.raises(NotFound):
        await admin.call("device.pair.remove", {"deviceId": device.id})


# -- auto-approval ---------------------------------------------------------------------
async def test_loopback_auto_approval_never_for_browsers(stack, admin: Admin) -> None:
    def allow(document: dict) -> None:
        document["auth"]["autoApproveLoopback"] = True

    async with admin.live_config(allow):
        cli = Device()
        hello = await admin.verify(
            verify_request(
                ip="127.0.0.1",
                token=stack.admin_token,
                device=cli,
                scopes=READ,
                direct_loopback=True,
            )
        )
        assert remember(hello["deviceToken"])
        browser = Device()
        refused = await admin.verify_error(
            verify_request(
                ip="127.0.0.1",
                token=stack.admin_token,
                device=browser,
                scopes=READ,
                direct_loopback=True,
                origin="http://127.0.0.1:8080",
            )
        )
        assert refused.name == "NOT_PAIRED"
        proxied = await admin.verify_error(
            verify_request(ip=unique_ip(), token=stack.admin_token, device=Device(), scopes=READ)
        )
        assert proxied.name == "NOT_PAIRED"


async def test_unknown_role_and_role_not_allowed(stack, admin: Admin) -> None:
    odd = await admin.verify_error(
        verify_request(ip=unique_ip(), token=stack.admin_token, role="root")
    )
    assert (odd.name, odd.detail_code) == ("FORBIDDEN", "UNAUTHORIZED_ROLE")
    device = Device()
    token = await _pair(admin, stack, device, READ)
    as_node = await admin.verify_error(
        verify_request(ip=unique_ip(), device_token=token, role="node")
    )
    assert (as_node.name, as_node.detail_code) == ("FORBIDDEN", "UNAUTHORIZED_ROLE")
