"""Shutdown (docs/protocol/websocket.md): readiness fails, `shutdown` to clients, in-flight requests
finish, then 1012; and a client that reconnects elsewhere with `resume` loses nothing."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import orjson
import pytest
from nats.aio.msg import Msg

from aisopod.bus import encode_reply
from aisopod.compat.natspy import flush_in_order
from tests.support.ws_client import WsClient

from .conftest import SEED, start_gateway


async def test_drain_sends_shutdown_finishes_requests_then_closes_1012(gw, tmp_path) -> None:
    seed = tmp_path / "aisopod.json"
    seed.write_text(json.dumps(SEED))
    host, stop, task, port = await start_gateway(
        gw.nc.connected_url.geturl(), gw.prefix, seed, "ws-unit-drain"
    )
    replies: list[asyncio.Task[None]] = []
    # The owner answers once the test has seen the drain: the drain ends when the request
    # does, and a fixed delay let it end before /ready was read on a busy machine.
    release = asyncio.Event()

    async def slow_owner(msg: Msg) -> None:
        async def answer() -> None:
            await release.wait()
            await msg.respond(encode_reply({"previews": []}))

        replies.append(asyncio.create_task(answer()))

    # sessions.preview: a read only the owner answers (sessions.list is answered here).
    sub = await gw.nc.subscribe(f"{gw.prefix}.rpc.sessions.preview", cb=slow_owner)
    await flush_in_order(gw.nc, 5)  # live before the gateway (another connection) can ask
    try:
        ws = await WsClient.connect(
            f"ws://127.0.0.1:{port}/ws", token="admin-token", subscribe=["cron.event"]
        )
        in_flight = asyncio.create_task(ws.call("sessions.preview", {"keys": ["s1"]}))
        deadline = time.monotonic() + 30
        while not replies:  # the request reached the owner before SIGTERM's work
            assert time.monotonic() < deadline, "the request never reached the owner"
            await asyncio.sleep(0.01)
        drain = asyncio.create_task(host.drain())
        shutdown = await ws.next_event("shutdown", timeout=5)
        assert shutdown["params"]["payload"]["reason"] == "service restart"
        async with httpx.AsyncClient(trust_env=False) as http:
            ready = await http.get(f"http://127.0.0.1:{port}/ready")
        assert ready.status_code == 503 and "draining" in ready.json()["reasons"]
        release.set()
        assert await in_flight == {"previews": []}  # answered before the close
        assert await ws.wait_closed() == (1012, "service restart")
        await asyncio.wait_for(drain, 10)
        with pytest.raises(Exception, match="503"):  # no longer accepting clients
            await WsClient.connect(f"ws://127.0.0.1:{port}/ws", token="admin-token")
    finally:
        release.set()
        await sub.unsubscribe()
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_reconnect_with_resume_after_a_replica_left(gw, tmp_path) -> None:
    seed = tmp_path / "aisopod.json"
    seed.write_text(json.dumps(SEED))
    _host, stop, task, port = await start_gateway(
        gw.nc.connected_url.geturl(), gw.prefix, seed, "ws-unit-gone"
    )
    ws = await WsClient.connect(
        f"ws://127.0.0.1:{port}/ws", token="admin-token", subscribe=["cron.event"]
    )
    first = await gw.bus.publish_event("cron.event", {"n": 0})
    await ws.next_event("cron.event", timeout=5)
    stop.set()  # the replica goes away (no drain: worst case)
    await asyncio.wait_for(task, 30)
    await ws.wait_closed()
    missed = [await gw.bus.publish_event("cron.event", {"n": n}) for n in (1, 2)]
    async with await WsClient.connect(
        gw.url, token="admin-token", subscribe=["cron.event"], resume=ws.last_seq
    ) as again:
        assert ws.last_seq == first
        assert again.hello["resume"] == {"replayed": 2, "gap": False}
        got = [await again.next_event("cron.event", timeout=5) for _ in missed]
        assert [e["params"]["seq"] for e in got] == missed
        assert orjson.loads(orjson.dumps(got[0]))["params"]["payload"] == {"n": 1}
