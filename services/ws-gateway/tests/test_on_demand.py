"""What runs only while used (docs/ws-gateway.md, What runs when): the events consumer while
this replica holds a connection (plus a grace), the `sessions` index while it is read or an
OpenClaw client is in its `sessions.changed` feed. A gateway of its own, so that no other
module's connections hold its parts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

import nats
import orjson
import pytest

from aisopod.bus import Bus
from aisopod.state import stream_name
from tests.support.ws_client import RpcError, WsClient

from .conftest import SEED, Running, serve_auth, start_gateway
from .test_openclaw_socket import connect, dial, event, reply

DEADLINE_S = 30.0
READ = ["operator.read"]


@pytest.fixture(scope="module")
async def quiet(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    prefix = "q" + uuid.uuid4().hex[:8]
    seed = tmp_path_factory.mktemp("seed") / "aisopod.json"
    seed.write_text(json.dumps(SEED))
    nc = await nats.connect(nats_url)
    auth = await serve_auth(nc, prefix)
    host, stop, task, port = await start_gateway(nats_url, prefix, seed, "ws-quiet-1")
    try:
        yield Running(
            f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", prefix, nc,
            Bus(nc, host.bus.subjects), host,
        )  # fmt: skip
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await auth.unsubscribe()
        await nc.close()


async def until(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def event_consumers(gw: Running) -> int:
    info = await gw.bus.js.stream_info(stream_name(gw.prefix, "EVENTS"))
    return int(info.state.consumer_count)


async def test_the_events_consumer_runs_from_the_first_hello_to_a_grace_after_the_last_close(
    quiet: Running,
) -> None:
    fanout = quiet.gateway.fanout
    # Nobody connected since boot: no consumer, so no event of any turn reaches this replica.
    assert not fanout.events.running and await event_consumers(quiet) == 0
    await quiet.bus.publish_event("cron.event", {"m": "before anyone"})
    async with await WsClient.connect(quiet.url, token="reader-token", scopes=READ) as ws:
        assert fanout.events.running and await event_consumers(quiet) == 1
        # Published right after the hello: delivered, with its stream sequence.
        seq = await quiet.bus.publish_event("cron.event", {"m": "first"})
        got = await ws.next_event("cron.event", timeout=10)
        assert got["params"]["payload"] == {"m": "first"} and got["params"]["seq"] == seq
    starts = fanout.events.starts
    # Reconnects within the grace reuse the running consumer.
    async with await WsClient.connect(quiet.url, token="reader-token", scopes=READ) as again:
        seq = await quiet.bus.publish_event("cron.event", {"m": "again"})
        got = await again.next_event("cron.event", timeout=10)
        assert got["params"]["seq"] == seq
    assert fanout.events.starts == starts
    await until(lambda: fanout.events.holders == 0)
    # Every connection holds it, whatever its role and wire format: a node, an OpenClaw client.
    node_client = {"id": "n", "version": "1", "platform": "linux", "mode": "node"}
    async with (
        await WsClient.connect(
            quiet.url, token="node-token", role="node", scopes=[], client=node_client
        ),
        dial(quiet) as openclaw,
    ):
        await connect(openclaw, auth={"token": "reader-token"})
        assert fanout.events.holders == 2 and fanout.events.starts == starts
    await until(lambda: fanout.events.holders == 0)
    fanout.events.idle_s = 0.2
    try:
        await until(lambda: not fanout.events.running)
        deadline = time.monotonic() + DEADLINE_S
        while await event_consumers(quiet) != 0:  # the unsubscribe follows the stop
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        # A connection after the stop starts it again before its hello.
        async with await WsClient.connect(quiet.url, token="reader-token", scopes=READ) as late:
            seq = await quiet.bus.publish_event("cron.event", {"m": "late"})
            got = await late.next_event("cron.event", timeout=10)
            assert got["params"]["seq"] == seq and fanout.events.starts == starts + 1
    finally:
        fanout.events.idle_s = 300.0


async def test_resume_on_a_replica_whose_consumer_stopped_replays_then_goes_live(
    quiet: Running,
) -> None:
    fanout = quiet.gateway.fanout
    fanout.events.idle_s = 0.2
    try:
        async with await WsClient.connect(
            quiet.url, token="admin-token", subscribe=["cron.event"]
        ) as ws:
            first = await quiet.bus.publish_event("cron.event", {"n": 0})
            await ws.next_event("cron.event", timeout=10)
            last_seq = ws.last_seq
            assert last_seq == first
        await until(lambda: not fanout.events.running)
        missed = [await quiet.bus.publish_event("cron.event", {"n": n}) for n in (1, 2)]
        resumed = await WsClient.connect(
            quiet.url, token="admin-token", subscribe=["cron.event"], resume=last_seq
        )
        async with resumed:
            assert resumed.hello["resume"] == {"replayed": 2, "gap": False}
            live = await quiet.bus.publish_event("cron.event", {"n": 3})
            got = [await resumed.next_event("cron.event", timeout=10) for _ in range(3)]
            assert [e["params"]["seq"] for e in got] == [*missed, live]
            assert [e["params"]["payload"]["n"] for e in got] == [1, 2, 3]
    finally:
        fanout.events.idle_s = 300.0


async def test_the_sessions_index_runs_while_read_and_stops_when_idle(quiet: Running) -> None:
    edge = quiet.gateway.edge_reads
    index, demand = edge.sessions, edge.sessions_demand
    assert index is not None
    await until(lambda: not demand.running)  # an earlier test's reads are over
    assert not index.warm and index.count == 0
    sessions = await quiet.host.kv("sessions")
    stored = {"key": "agent:main:read", "agentId": "main", "updatedAt": 3, "label": "Read"}
    await sessions.put("s.agent=3Amain=3Aread", orjson.dumps(stored))
    demand.idle_s = 300.0
    async with await WsClient.connect(quiet.url, token="reader-token", scopes=READ) as ws:
        # No runtime on this bus: until the index started by the first read is warm, the
        # read goes to the owner, who is absent (an error); then the edge answers.
        await until(lambda: len(quiet.gateway.conns) == 1)  # earlier tests' closes are done
        (conn,) = quiet.gateway.conns.values()
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                listed = await ws.call("sessions.list")
                break
            except RpcError:
                # The owner answered (here: could not): the next edge read catches up first,
                # so it is never older than what the owner said (monotonic reads).
                assert "sessions" in conn.edge_unsynced
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert [s["key"] for s in listed["sessions"]] == ["agent:main:read"]
        assert "sessions" not in conn.edge_unsynced
    assert demand.running and index.warm
    demand.idle_s = 0.2
    try:
        await until(lambda: not demand.running)
        assert not index.warm and index.count == 0  # the copy is dropped with the watch
    finally:
        demand.idle_s = 300.0


async def test_a_sessions_changed_client_holds_a_warm_index_until_it_closes(
    quiet: Running,
) -> None:
    edge = quiet.gateway.edge_reads
    index, demand = edge.sessions, edge.sessions_demand
    assert index is not None
    demand.idle_s = 0.2
    try:
        await until(lambda: not demand.running)
        sessions = await quiet.host.kv("sessions")
        async with dial(quiet) as ws:
            await connect(ws, auth={"token": "reader-token"})
            await ws.send(b'{"type":"req","id":"s","method":"sessions.subscribe","params":{}}')
            assert (await reply(ws, "s"))["payload"] == {"subscribed": True}
            # Warm when the reply is out: the very next change is announced.
            assert index.warm and demand.holders == 1
            stored = {"key": "agent:main:fed", "agentId": "main", "updatedAt": 4, "label": "F"}
            await sessions.put("s.agent=3Amain=3Afed", orjson.dumps(stored))
            changed = await event(
                ws, "sessions.changed", lambda p: p["sessionKey"] == stored["key"]
            )
            assert changed["session"]["label"] == "F"
            # Held: many idle periods later it still runs (no timing can stop it).
            for _ in range(10):
                await asyncio.sleep(0.05)
            assert demand.running
        await until(lambda: not demand.running)
        assert demand.holders == 0 and not index.warm
    finally:
        demand.idle_s = 300.0


async def test_openclaw_health_after_an_owner_answer_first_catches_up(quiet: Running) -> None:
    """OpenClaw's `health` is answered at the edge once the sessions index is warm; a
    connection the owner answered while it was cold (here: could not, no runtime) takes the
    row's path once more, whose reads catch up with their buckets before the edge answers
    again, so a summary is never older than what the owner said before it."""
    edge = quiet.gateway.edge_reads
    demand = edge.sessions_demand
    agents = await quiet.host.kv("agents")
    await agents.put("agent.main", orjson.dumps({"id": "main", "name": "Main", "tools": []}))
    demand.idle_s = 0.2
    try:
        await until(lambda: not demand.running)  # cold: an earlier test's reads are over
    finally:
        demand.idle_s = 300.0
    async with dial(quiet) as ws:
        await connect(ws, auth={"token": "reader-token"})
        await until(lambda: len(quiet.gateway.conns) == 1)  # earlier tests' closes are done
        (conn,) = quiet.gateway.conns.values()
        owner_answered = False
        deadline = time.monotonic() + DEADLINE_S
        for n in range(1000):
            await ws.send(orjson.dumps({"type": "req", "id": f"h{n}", "method": "health"}))
            answer = await slow_reply(ws, f"h{n}")
            if answer["ok"]:
                break
            owner_answered = True  # the edge was cold: the absent owner was asked
            assert "sessions" in conn.edge_unsynced
            assert time.monotonic() < deadline, answer
        assert owner_answered and edge.sessions is not None and edge.sessions.warm
        assert not conn.edge_unsynced & {"agents", "sessions"}
        assert answer["payload"]["defaultAgentId"] == "main"


async def slow_reply(ws: object, request_id: str) -> dict:
    """`reply` with room for an owner nobody serves: its "no responders" grace is 5 s."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), DEADLINE_S))  # type: ignore[attr-defined]
        if frame.get("type") == "res" and frame.get("id") == request_id:
            return dict(frame)
        assert time.monotonic() < deadline
