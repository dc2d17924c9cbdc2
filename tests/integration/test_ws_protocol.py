"""Protocol conformance of the ws-gateway against the real stack, through Traefik: one test
per rule of docs/protocol/websocket.md (frames, batch, notification, parse error, handshake
order and timeout, protocol range, size limits, scopes, flood close, subscriptions, resume, slow
consumers). Credentials are verified by the real auth service."""

from __future__ import annotations

import asyncio
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.support.ws_client import DEFAULT_CLIENT, RpcError, WsClient
from tests.support.ws_stack import WsStack, live_gateway_config, require_ws_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def _connect(env: WsStack, **kwargs) -> WsClient:  # type: ignore[no-untyped-def]
    return await WsClient.connect(env.url, token=env.token, **kwargs)


async def _publish(env: WsStack, name: str, payload: dict) -> int:
    nc = await env.nats()
    try:
        ack = await nc.jetstream().publish(f"aisopod.evt.{name}", orjson.dumps(payload))
        return ack.seq
    finally:
        await nc.close()


async def _slow_consumers(replica: str) -> float:
    """How many clients this ws-gateway replica has closed as slow consumers (its /metrics)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://{urlsplit(replica).netloc}/metrics")).text
    for line in text.splitlines():
        if line.startswith("aisopod_ws_slow_consumers_total "):
            return float(line.split()[1])
    raise AssertionError("no aisopod_ws_slow_consumers_total on /metrics")


async def test_frames_hello_and_every_server_frame_is_jsonrpc(env) -> None:
    async with await _connect(env) as ws:
        assert ws.hello["protocol"] == 1 and ws.hello["auth"]["role"] == "operator"
        response = await ws.request("health")
        assert response["jsonrpc"] == "2.0" and response["result"]["services"]
        shorthand = {"id": 9, "method": "health"}  # the seed's shorthand, no "jsonrpc"
        await ws.send_raw(orjson.dumps(shorthand).decode())
        assert (await ws.recv_raw())["id"] == 9


async def test_batch_and_notifications(env) -> None:
    async with await _connect(env) as ws:
        responses = await ws.batch(
            [{"id": 1, "method": "health"}, {"method": "health"}, {"id": 2, "method": "x.y"}]
        )
        assert sorted(r["id"] for r in responses) == [1, 2]
        await ws.send_raw("[]")
        assert (await ws.recv_raw())["error"]["code"] == -32600


async def test_parse_error_has_null_id(env) -> None:
    async with await _connect(env) as ws:
        await ws.send_raw("{not json")
        reply = await ws.recv_raw()
        assert reply["id"] is None and reply["error"]["code"] == -32700
        assert "result" in await ws.request("health")


async def test_first_request_must_be_connect(env) -> None:
    ws = await WsClient.connect(env.url, handshake=False)
    assert set(ws.challenge) == {"nonce", "ts"}
    assert (await ws.request("health"))["error"]["code"] == -32600
    assert (await ws.wait_closed())[0] == 1008


async def test_handshake_timeout(env) -> None:
    async with live_gateway_config(env, handshakeTimeoutMs=300):
        ws = await WsClient.connect(env.url, handshake=False)
        assert await ws.wait_closed(timeout=5) == (1008, "handshake timeout")


async def test_protocol_mismatch(env) -> None:
    with pytest.raises(RpcError) as info:
        await _connect(env, extra_params={"minProtocol": 2, "maxProtocol": 2})
    assert info.value.detail == "PROTOCOL_MISMATCH"


async def test_bad_credential_is_unauthenticated(env) -> None:
    with pytest.raises(RpcError) as info:
        await WsClient.connect(env.url, token="not-the-token-" + uuid.uuid4().hex)
    assert info.value.code == -32001


async def test_size_limits(env) -> None:
    ws = await WsClient.connect(env.url, handshake=False)
    await ws.send_raw("x" * (64 * 1024 + 1))
    assert (await ws.wait_closed())[0] == 1009
    async with await _connect(env) as ws:
        await ws.send_raw("y" * (1024 * 1024 + 1))
        assert (await ws.wait_closed())[0] == 1009


async def test_scopes_are_enforced_and_a_flood_of_forbidden_closes(env) -> None:
    ws = await _connect(env, scopes=["operator.read"])
    assert ws.hello["auth"]["scopes"] == ["operator.read"]
    for _ in range(11):
        with pytest.raises(RpcError) as info:
            await ws.call("config.set", {"config": {}, "baseHash": "x"})
        assert info.value.data["code"] == "MISSING_SCOPE"
    assert (await ws.wait_closed()) == (1008, "too many forbidden requests")


async def test_unknown_method(env) -> None:
    async with await _connect(env) as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("does.not.exist")
        assert info.value.code == -32601


async def test_subscribe_filters(env) -> None:
    marker = uuid.uuid4().hex
    async with await _connect(env, subscribe=["cron.event"]) as ws:
        await _publish(env, "config.changed", {"hash": marker, "paths": []})
        seq = await _publish(env, "cron.event", {"jobId": marker, "action": "run", "status": "ok"})
        event = await ws.next_event(lambda e: e["method"] != "tick", timeout=5)
        assert event["method"] == "cron.event" and event["params"]["seq"] == seq


async def test_resume_without_and_with_gap(env) -> None:
    marker = uuid.uuid4().hex
    ws = await _connect(env, subscribe=["cron.event"])
    await _publish(env, "cron.event", {"jobId": marker, "n": 0})
    await ws.next_event("cron.event", timeout=5)
    last = ws.last_seq
    await ws.close()
    missed = [await _publish(env, "cron.event", {"jobId": marker, "n": n}) for n in (1, 2)]
    async with await _connect(env, subscribe=["cron.event"], resume=last) as again:
        assert again.hello["resume"] == {"replayed": 2, "gap": False}
        got = [await again.next_event("cron.event", timeout=5) for _ in missed]
        assert [e["params"]["seq"] for e in got] == missed
    async with (
        live_gateway_config(env, replayMaxEvents=1),
        await _connect(env, resume=last) as gap,
    ):
        assert gap.hello["resume"] == {"replayed": 0, "gap": True}


async def test_one_stalled_client_does_not_delay_a_hundred_others(env) -> None:
    # The stalled client sits on replica 1 directly: through Traefik, the proxy's own buffers
    # would absorb megabytes before the gateway saw any backpressure.
    port = urlsplit(env.replicas[0]).port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    async with live_gateway_config(env, maxBufferedBytes=256 * 1024):
        stalled = await WsClient.connect(
            env.replicas[0],
            token=env.token,
            headers=env.edge,
            subscribe=["cron.event"],
            sock=sock,
            max_queue=1,
        )
        others = await asyncio.gather(
            *(_connect(env, subscribe=["cron.event"]) for _ in range(100))
        )
        slow_before = await _slow_consumers(env.replicas[0])
        stalled.stall()
        try:
            marker = uuid.uuid4().hex
            blob = "z" * 32_000
            count = 200
            for n in range(count):
                await _publish(env, "cron.event", {"jobId": marker, "n": n, "blob": blob})
            # The gateway gives a closed slow consumer a bounded grace (30 s) to read up to
            # its close frame; it starts reading as soon as the gateway has closed it, not
            # after the others have read everything (which takes long on a loaded machine).
            deadline = asyncio.get_running_loop().time() + 60
            while await _slow_consumers(env.replicas[0]) <= slow_before:
                assert asyncio.get_running_loop().time() < deadline, "stalled client kept"
                await asyncio.sleep(0.05)
            stalled.unstall()
            deadline = asyncio.get_running_loop().time() + 20
            while not stalled.closed.done():
                assert asyncio.get_running_loop().time() < deadline, "stalled client not closed"
                stalled.drain_events()
                await asyncio.sleep(0.01)
            assert stalled.closed.result() == (1008, "slow consumer")
            for ws in others:
                got = [await ws.next_event("cron.event", timeout=20) for _ in range(count)]
                assert [e["params"]["payload"]["n"] for e in got] == list(range(count))
        finally:
            await asyncio.gather(*(ws.close() for ws in others))
            await stalled.close()


async def test_second_connect_is_refused(env) -> None:
    async with await _connect(env) as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("connect", {"client": DEFAULT_CLIENT})
        assert info.value.code == -32600
