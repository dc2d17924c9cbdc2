"""Handshake rules (docs/protocol/websocket.md) against the in-process gateway (real NATS and
socket)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.ws_client import DEFAULT_CLIENT, DeviceKey, RpcError, WsClient


async def test_challenge_then_hello_with_features_snapshot_and_policy(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        assert set(ws.challenge) == {"nonce", "ts"} and ws.challenge["nonce"]
        hello = ws.hello
        assert hello["protocol"] == 1
        assert hello["server"]["instance"] == "ws-unit-1" and hello["server"]["connId"]
        assert "chat.send" in hello["features"]["methods"]
        assert "connect" not in hello["features"]["methods"]
        assert "chat.event" in hello["features"]["events"]
        assert set(hello["snapshot"]) == {"presence", "health", "uptimeMs"}
        assert hello["auth"] == {
            "method": "token",
            "role": "operator",
            "scopes": ["operator.admin"],
        }
        assert hello["policy"] == {
            "maxPayload": 1024 * 1024,
            "maxBufferedBytes": 256 * 1024,
            "tickIntervalMs": 1000,
        }
        assert "resume" not in hello


async def test_first_frame_must_be_connect(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    response = await ws.request("health")
    assert response["error"]["code"] == -32600
    assert await ws.wait_closed() == (1008, "the first request must be connect")


@pytest.mark.parametrize("frame", [b"{nope", b"[]", b'{"method":"connect"}'])
async def test_bad_first_frames_close_1008(gw, frame: bytes) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    await ws.send_raw(frame.decode())
    error = await ws.recv_raw()
    assert error["error"]["code"] == -32600 and error["id"] is None
    code, _ = await ws.wait_closed()
    assert code == 1008


async def test_handshake_timeout_closes_1008(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    assert await ws.wait_closed(timeout=5) == (1008, "handshake timeout")


async def test_protocol_mismatch_closes_1002(gw) -> None:
    with pytest.raises(RpcError) as info:
        await WsClient.connect(
            gw.url, token="admin-token", extra_params={"minProtocol": 2, "maxProtocol": 3}
        )
    assert info.value.code == -32600 and info.value.detail == "PROTOCOL_MISMATCH"
    assert info.value.data["serverProtocol"] == 1


async def test_protocol_mismatch_close_code(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    await ws.send_raw(
        orjson.dumps(
            {"id": 1, "method": "connect", "params": {"minProtocol": 5, "maxProtocol": 5}}
        ).decode()
    )
    assert (await ws.recv_raw())["error"]["data"]["code"] == "PROTOCOL_MISMATCH"
    assert (await ws.wait_closed())[0] == 1002


async def test_frame_over_64k_before_hello_closes_1009(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    await ws.send_raw("x" * (64 * 1024 + 1))
    assert (await ws.wait_closed())[0] == 1009


async def test_frame_over_max_payload_after_hello_closes_1009(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        await ws.send_raw("x" * (100 * 1024))  # fine after hello: answered, not closed
        assert (await ws.recv_raw())["error"]["code"] == -32700
        await ws.send_raw("x" * (1024 * 1024 + 1))
        assert (await ws.wait_closed())[0] == 1009


async def test_wrong_token_is_unauthenticated_and_closes_1008(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    await ws.send_raw(
        orjson.dumps(
            {
                "id": "c",
                "method": "connect",
                "params": {"client": DEFAULT_CLIENT, "auth": {"token": "bad"}},
            }
        ).decode()
    )
    error = (await ws.recv_raw())["error"]
    assert error["code"] == -32001 and error["data"]["code"] == "AUTH_TOKEN_MISMATCH"
    assert (await ws.wait_closed())[0] == 1008


async def test_bearer_on_the_upgrade_replaces_auth(gw) -> None:
    async with await WsClient.connect(
        gw.url, bearer="reader-token", scopes=["operator.read"]
    ) as ws:
        assert ws.hello["auth"]["scopes"] == ["operator.read"]


async def test_scopes_are_cut_to_what_the_credential_allows(gw) -> None:
    async with await WsClient.connect(
        gw.url, token="reader-token", scopes=["operator.read", "operator.admin"]
    ) as ws:
        assert ws.hello["auth"]["scopes"] == ["operator.read"]
    async with await WsClient.connect(gw.url, token="admin-token", scopes=[]) as ws:
        assert ws.hello["auth"]["scopes"] == []  # default deny
        with pytest.raises(RpcError) as info:
            await ws.call("system-presence")
        assert info.value.detail == "MISSING_SCOPE"


async def test_device_signature_over_the_nonce(gw) -> None:
    key = DeviceKey()
    async with await WsClient.connect(gw.url, token="admin-token", device=key) as ws:
        presence = await ws.call("system-presence")
        assert any(p["key"] == key.device_id for p in presence)
    other = DeviceKey()
    ws = await WsClient.connect(gw.url, handshake=False)
    proof = other.proof(
        nonce=ws.challenge["nonce"], client_id="someone-else", role="operator", scopes=[]
    )
    params = {"client": DEFAULT_CLIENT, "auth": {"token": "admin-token"}, "device": proof}
    await ws.send_raw(orjson.dumps({"id": 1, "method": "connect", "params": params}).decode())
    assert (await ws.recv_raw())["error"]["data"]["code"] == "DEVICE_SIGNATURE_INVALID"
    assert (await ws.wait_closed())[0] == 1008


async def test_role_not_allowed_by_the_credential(gw) -> None:
    with pytest.raises(RpcError) as info:
        await WsClient.connect(gw.url, token="reader-token", role="node", scopes=[])
    assert info.value.detail == "UNAUTHORIZED_ROLE"


async def test_second_connect_is_invalid_request_and_keeps_the_socket(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("connect", {"client": DEFAULT_CLIENT})
        assert info.value.code == -32600
        assert (await ws.call("health"))["services"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://ui.example", True),  # cors.allowedOrigins
        (None, True),  # not a browser
        ("http://evil.example", False),
    ],
)
async def test_browser_origin_check(gw, origin: str | None, allowed: bool) -> None:
    if allowed:
        async with await WsClient.connect(gw.url, token="admin-token", origin=origin) as ws:
            assert ws.hello["protocol"] == 1
        return
    with pytest.raises(RpcError) as info:
        await WsClient.connect(gw.url, token="admin-token", origin=origin)
    assert info.value.detail == "ORIGIN_NOT_ALLOWED"


async def test_own_origin_is_allowed(gw) -> None:
    own = gw.http  # Origin equal to the Host the request went to
    async with await WsClient.connect(gw.url, token="admin-token", origin=own) as ws:
        assert ws.hello["protocol"] == 1


async def test_http_probes_on_the_websocket_port(gw) -> None:
    async with httpx.AsyncClient(base_url=gw.http, trust_env=False) as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.json()["service"] == "ws-gateway"
        ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}
        metrics = await http.get("/metrics")
        assert "aisopod_ws_connections" in metrics.text
        assert (await http.get("/nope")).status_code == 404
        # A broken upgrade is refused by websockets itself; it carries them too.
        broken = await http.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
        assert broken.status_code >= 400
        for answer in (health, ready, metrics, await http.get("/nope"), broken):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"


async def test_requests_during_verification_are_refused(gw) -> None:
    ws = await WsClient.connect(gw.url, handshake=False)
    params = {"client": DEFAULT_CLIENT, "auth": {"token": "admin-token"}}
    await ws.send_raw(
        orjson.dumps([{"id": 1, "method": "connect", "params": params}][0]).decode() + ""
    )
    await ws.send_raw(orjson.dumps({"id": 2, "method": "health"}).decode())
    frames = [await ws.recv_raw(), await ws.recv_raw()]
    by_id = {f["id"]: f for f in frames}
    assert "result" in by_id[1]
    # Either refused while verifying, or answered after hello: never before hello.
    assert frames[0]["id"] == 1 or by_id[2]["error"]["data"]["code"] == "HANDSHAKE_PENDING"
    await ws.close()
    await asyncio.sleep(0)


async def test_upgrade_without_the_edge_proof_is_refused(gw) -> None:
    """A socket that did not come through Traefik gets 403 before anything of it (its
    X-Forwarded-For, its credential) is looked at."""
    forged = {"X-Forwarded-For": "203.0.113.7", "Authorization": "Bearer admin-token"}
    for proof in ({}, {"X-Aisopod-Edge": "wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(gw.url, additional_headers={**forged, **proof}, open_timeout=5)
        response = refused.value.response
        assert response.status_code == 403
        assert b"edge proof" in response.body


async def test_a_rebound_host_is_not_an_origin_of_ours(gw) -> None:
    """DNS rebinding: `evil.example` re-pointed at the gateway sends Host = Origin =
    `evil.example:<port>`; equal, but no name the operator configured."""
    address, port = gw.http.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(RpcError) as info:
        await WsClient.connect(
            f"ws://evil.example:{port}/ws",
            token="admin-token",
            origin=f"http://evil.example:{port}",
            host=address,  # what the rebound name resolves to: the gateway
            port=int(port),
        )
    assert info.value.detail == "ORIGIN_NOT_ALLOWED"
