"""Events: fan-out by audience and subscription, seq, resume, targeted frames, backpressure."""

from __future__ import annotations

import asyncio
import socket
import uuid

import nats
import orjson

from aisopod.jsread import live_keys
from aisopod.principal import H_ORIGIN_CONN
from aisopod.state import bucket_name
from tests.support.ws_client import WsClient

from .conftest import SEED, serve_auth, start_gateway

READ = ["operator.read"]
COUNT = 300  # x 32 KB: more than the kernel buffers of a stalled loopback socket hold


def _marker() -> str:
    return uuid.uuid4().hex


async def _events_named(ws: WsClient, name: str, marker: str, count: int) -> list[dict]:
    out = []
    while len(out) < count:
        event = await ws.next_event(
            lambda e: e["method"] == name and e["params"]["payload"].get("m") == marker, timeout=5
        )
        out.append(event)
    return out


async def test_event_reaches_its_audience_with_stream_seq(gw) -> None:
    marker = _marker()
    async with (
        await WsClient.connect(
            gw.url, token="admin-token", subscribe=["cron.*", "exec.>"]
        ) as admin,
        await WsClient.connect(gw.url, token="reader-token", scopes=READ) as reader,
    ):
        seq = await gw.bus.publish_event("cron.event", {"jobId": "j", "m": marker})
        for ws in (admin, reader):
            (event,) = await _events_named(ws, "cron.event", marker, 1)
            assert event["params"]["seq"] == seq and event["params"]["ts"] > 0
            assert event["jsonrpc"] == "2.0"
        # approvals are for operator.approvals only: the reader never sees this one.
        await gw.bus.publish_event("exec.approval.requested", {"id": "a", "m": marker})
        await _events_named(admin, "exec.approval.requested", marker, 1)
        follow = _marker()
        await gw.bus.publish_event("cron.event", {"m": follow})
        event = await reader.next_event("cron.event", timeout=5)
        assert event["params"]["payload"]["m"] == follow  # nothing in between


async def test_subscribe_and_unsubscribe_narrow(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        # The short form names the default agent's session; events carry canonical keys.
        result = await ws.call("subscribe", {"events": ["chat.*"], "sessionKeys": ["s1"]})
        assert result == {"events": ["chat.*"], "sessionKeys": ["agent:main:s1"]}
        marker = _marker()
        await gw.bus.publish_event("cron.event", {"m": marker})
        for key in ("agent:main:s2", "agent:other:s1", "agent:main:s1"):
            await gw.bus.publish_event(
                "chat.event", {"sessionKey": key, "state": "final", "m": marker}
            )
        event = await ws.next_event(lambda e: e["method"] != "tick", timeout=5)
        assert event["method"] == "chat.event"
        assert event["params"]["payload"]["sessionKey"] == "agent:main:s1"
        result = await ws.call("unsubscribe", {"events": ["chat.*"]})
        assert result["events"] == []
        await gw.bus.publish_event("chat.event", {"sessionKey": "s1", "state": "final"})
        await gw.bus.publish_event("health.changed", {"ok": True})
        tick = await ws.next_event(lambda e: e["method"] != "tick" or True, timeout=5)
        assert tick["method"] == "tick"  # ticks still come; nothing else does


async def test_unsubscribe_from_everything_by_default(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        result = await ws.call("unsubscribe", {"events": ["tick", "presence.changed"]})
        assert result["events"] == [">"] and result["excluded"] == ["presence.changed", "tick"]
        # What arrived before the reply was sent before the unsubscribe took effect (this
        # connection's own presence.changed, say); from here on only the rest may come.
        ws.drain_events()
        marker = _marker()
        await gw.bus.publish_event("cron.event", {"m": marker})
        event = await ws.next_event(timeout=5)
        assert event["method"] == "cron.event"


async def test_tool_stream_only_to_the_origin_connection(gw) -> None:
    async with (
        await WsClient.connect(gw.url, token="admin-token", subscribe=["agent.event"]) as origin,
        await WsClient.connect(gw.url, token="admin-token", subscribe=["agent.event"]) as other,
    ):
        conn_id = origin.hello["server"]["connId"]
        marker = _marker()
        headers = {H_ORIGIN_CONN: conn_id}
        await gw.bus.publish_event("agent.event", {"stream": "tool", "m": marker}, headers)
        await gw.bus.publish_event("agent.event", {"stream": "assistant", "m": marker}, headers)
        first = await origin.next_event("agent.event", timeout=5)
        assert first["params"]["payload"]["stream"] == "tool"
        seen = await other.next_event("agent.event", timeout=5)
        assert seen["params"]["payload"]["stream"] == "assistant"


async def test_a_node_gets_session_events_only_for_its_sessions(gw) -> None:
    """chat.event reaches nodes only through session subscriptions: one whose payload names
    no session reaches no node (live and on resume alike)."""
    marker = _marker()
    client = {"id": "node-app", "version": "1", "platform": "linux", "mode": "node"}
    async with (
        await WsClient.connect(
            gw.url, token="node-token", role="node", scopes=[], client=client
        ) as node,
        await WsClient.connect(gw.url, token="admin-token") as admin,
    ):
        await node.call("subscribe", {"events": ["chat.event", "voicewake.changed"]})
        await node.call("subscribe", {"events": [], "sessionKeys": ["agent:main:s-node"]})
        first = await gw.bus.publish_event("chat.event", {"state": "final", "m": marker})
        await gw.bus.publish_event("chat.event", {"sessionKey": "agent:main:s-other", "m": marker})
        await gw.bus.publish_event("chat.event", {"sessionKey": "agent:main:s-node", "m": marker})
        await gw.bus.publish_event("voicewake.changed", {"triggers": [], "m": marker})
        got = [await node.next_event(timeout=5) for _ in range(2)]
        assert [e["method"] for e in got] == ["chat.event", "voicewake.changed"]
        assert got[0]["params"]["payload"]["sessionKey"] == "agent:main:s-node"
        await _events_named(admin, "chat.event", marker, 3)  # operators see all three
    async with await WsClient.connect(
        gw.url, token="node-token", role="node", scopes=[], client=client, resume=first - 1
    ) as again:
        event = await again.next_event(lambda e: e["method"] != "tick", timeout=5)
        assert event["method"] == "voicewake.changed"


async def test_resume_replays_missed_events_before_live_ones(gw) -> None:
    ws = await WsClient.connect(gw.url, token="admin-token", subscribe=["cron.event"])
    marker = _marker()
    first = await gw.bus.publish_event("cron.event", {"n": 0, "m": marker})
    await _events_named(ws, "cron.event", marker, 1)
    last_seq = ws.last_seq
    assert last_seq == first
    await ws.close()
    missed = [await gw.bus.publish_event("cron.event", {"n": i, "m": marker}) for i in (1, 2, 3)]
    await gw.bus.publish_event("chat.event", {"sessionKey": "x", "state": "final", "m": marker})
    resumed = await WsClient.connect(
        gw.url, token="admin-token", subscribe=["cron.event"], resume=last_seq
    )
    async with resumed:
        assert resumed.hello["resume"] == {"replayed": 3, "gap": False}
        live = await gw.bus.publish_event("cron.event", {"n": 4, "m": marker})
        got = await _events_named(resumed, "cron.event", marker, 4)
        assert [e["params"]["seq"] for e in got] == [*missed, live]
        assert [e["params"]["payload"]["n"] for e in got] == [1, 2, 3, 4]


async def test_resume_reports_a_gap(gw) -> None:
    marker = _marker()
    seqs = [await gw.bus.publish_event("cron.event", {"m": marker}) for _ in range(60)]
    # Only cron.event: the first connection's own presence.changed may be out before the
    # second one resumes, and would be replayed to a client subscribed to it.
    only = ["cron.event"]
    async with await WsClient.connect(
        gw.url, token="admin-token", subscribe=only, resume=seqs[0] - 1
    ) as ws:
        # replayMaxEvents is 50 in the test seed: more was missed, the client must refetch.
        assert ws.hello["resume"] == {"replayed": 0, "gap": True}
    async with await WsClient.connect(
        gw.url, token="admin-token", subscribe=only, resume=seqs[-1]
    ) as ws:
        assert ws.hello["resume"] == {"replayed": 0, "gap": False}


async def test_resume_after_the_stream_dropped_events_is_a_gap(gw) -> None:
    seq = await gw.bus.publish_event("cron.event", {"m": _marker()})
    await gw.bus.js.purge_stream(f"{gw.prefix.upper()}_EVENTS")
    later = await gw.bus.publish_event("cron.event", {"m": _marker()})
    assert later > seq
    async with await WsClient.connect(gw.url, token="admin-token", resume=seq - 1) as ws:
        assert ws.hello["resume"]["gap"] is True


async def test_addressed_frame_to_one_connection(gw) -> None:
    async with (
        await WsClient.connect(gw.url, token="admin-token") as target,
        await WsClient.connect(gw.url, token="admin-token") as other,
    ):
        conn_id = target.hello["server"]["connId"]
        await gw.bus.publish(
            f"{gw.prefix}.conn.{conn_id}", {"method": "session.note", "params": {"x": 1}}
        )
        event = await target.next_event("session.note", timeout=5)
        # One event shape: a targeted frame carries {ts, payload} like a broadcast one.
        assert event["params"]["payload"] == {"x": 1} and event["params"]["ts"] > 0
        assert "seq" not in event["params"]
        await gw.bus.publish_event("cron.event", {"m": "after"})
        assert (await other.next_event(lambda e: e["method"] != "tick", timeout=5))[
            "method"
        ] != "session.note"


async def test_tick(gw) -> None:
    async with await WsClient.connect(gw.url, token="reader-token", scopes=[]) as ws:
        tick = await ws.next_event("tick", timeout=5)
        assert set(tick["params"]) == {"ts", "payload"}
        assert tick["params"]["payload"] == {"ts": tick["params"]["ts"]}


async def test_presence_lists_clients_cluster_wide_and_announces(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token", subscribe=["presence.*"]) as ws:
        async with await WsClient.connect(
            gw.url, token="reader-token", scopes=READ, client={**_CLIENT, "displayName": "r"}
        ) as reader:
            conn_id = reader.hello["server"]["connId"]
            entries = await ws.call("system-presence")
            mine = next(e for e in entries if e["connId"] == conn_id)
            assert mine["role"] == "operator" and mine["ip"] == "127.0.0.1"
            assert mine["client"]["displayName"] == "r" and mine["since"] > 0
            changed = await ws.next_event(
                lambda e: (
                    e["method"] == "presence.changed"
                    and any(p["connId"] == conn_id for p in e["params"]["payload"]["presence"])
                ),
                timeout=5,
            )
            assert changed["method"] == "presence.changed"
        entry = await gw.host.kv("presence")
        assert conn_id not in await _keys(entry) or await _gone(entry, conn_id)


async def test_the_hello_presence_snapshot_is_joined_once_per_presence_change(gw) -> None:
    presence = gw.gateway.presence
    async with await WsClient.connect(gw.url, token="admin-token") as first:
        first_id = first.hello["server"]["connId"]
        encoded = presence.snapshot_json()
        # No await in between: the same bytes while presence is unchanged, and the list
        # the reads return is that JSON.
        assert presence.snapshot_json() is encoded
        assert presence.entries() == orjson.loads(encoded)
        assert any(e["connId"] == first_id for e in presence.entries())
        async with await WsClient.connect(gw.url, token="admin-token") as second:
            second_id = second.hello["server"]["connId"]
            snapshot = second.hello["snapshot"]["presence"]
            assert any(e["connId"] == first_id for e in snapshot)
            # The newcomer's own entry is added after its hello, so the next join has it.
            assert presence.snapshot_json() is not encoded
            assert any(e["connId"] == second_id for e in presence.entries())
    # A reader without operator.read still gets an empty snapshot.
    async with await WsClient.connect(gw.url, token="admin-token", scopes=[]) as bare:
        assert bare.hello["snapshot"]["presence"] == []


async def test_a_late_entry_of_a_closed_connection_is_deleted_not_listed(gw) -> None:
    """A put of this replica's that reached KV after its connection closed (it raced the
    delete) is removed again, and never listed."""
    presence = gw.gateway.presence
    kv = await gw.host.kv("presence")
    ghost = uuid.uuid4().hex
    entry = {"key": ghost, "connId": ghost, "instance": gw.host.instance, "role": "operator"}
    await kv.put(ghost, orjson.dumps(entry))
    assert await _gone(kv, ghost)
    # Another replica's entry for a key this one never had is listed as before.
    other = uuid.uuid4().hex
    await kv.put(other, orjson.dumps({**entry, "connId": other, "instance": "elsewhere"}))
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if any(e["connId"] == other for e in presence.entries()):
            break
        await asyncio.sleep(0.05)
    listed = {e["connId"] for e in presence.entries()}
    assert other in listed and ghost not in listed
    await kv.delete(other)


_CLIENT = {"id": "t", "version": "1", "platform": "python", "mode": "test"}


async def _keys(kv) -> list[str]:  # type: ignore[no-untyped-def]
    """The bucket's keys; none (not an error) when it is empty: a connection closed within
    its presence grace wrote nothing."""
    return await live_keys(kv)


async def _gone(kv, key: str) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if key not in await _keys(kv):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_close_order_from_auth_closes_matching_connections(gw) -> None:
    async with (
        await WsClient.connect(gw.url, token="reader-token", scopes=READ) as reader,
        await WsClient.connect(gw.url, token="admin-token") as admin,
    ):
        await gw.bus.publish(
            f"{gw.prefix}.control.connections.close",
            {"principalId": "reader", "reason": "credential revoked"},
        )
        assert await reader.wait_closed() == (1008, "credential revoked")
        assert (await admin.call("health"))["services"]


async def test_slow_consumer_is_closed_and_others_keep_receiving(gw) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(gw.url.split(":")[2].split("/")[0])))
    sock.setblocking(False)
    stalled = await WsClient.connect(
        gw.url, token="admin-token", subscribe=["cron.event"], sock=sock, max_queue=1
    )
    fast = [
        await WsClient.connect(gw.url, token="admin-token", subscribe=["cron.event"])
        for _ in range(3)
    ]
    stalled.stall()
    try:
        marker = _marker()
        blob = "x" * 32_000
        for index in range(COUNT):
            await gw.bus.publish_event("cron.event", {"m": marker, "i": index, "blob": blob})
        for ws in fast:
            got = await _events_named(ws, "cron.event", marker, COUNT)
            assert [e["params"]["payload"]["i"] for e in got] == list(range(COUNT))
        # The stalled client is cut off (1008 slow consumer) once it reads again.
        stalled.unstall()
        code, reason = await _closed_after_reading(stalled)
        assert (code, reason) == (1008, "slow consumer")
    finally:
        for ws in fast:
            await ws.close()
        await stalled.close()


async def _closed_after_reading(ws: WsClient) -> tuple[int, str]:
    deadline = asyncio.get_running_loop().time() + 10
    while not ws.closed.done():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the slow consumer was not closed")
        ws.drain_events()
        await asyncio.sleep(0.01)
    return ws.closed.result()


def test_payload_is_not_reencoded() -> None:
    # The fan-out embeds the stream message as is: keys and spacing survive untouched.
    from aisopod import jsonrpc

    frame = jsonrpc.encode_event("x", 1, 2, b'{"b":1, "a":2}')
    assert frame.endswith(b'"payload":{"b":1, "a":2}}}')
    assert orjson.loads(frame)["params"]["payload"] == {"b": 1, "a": 2}


async def test_a_stopping_gateway_deletes_what_it_wrote_and_writes_nothing_in_grace(
    nats_url: str, tmp_path
) -> None:
    """A replica of its own (its own prefix: the grace is in its seed) with an operator
    still within a long grace and a node (written at once) stops: the node's entry is put
    and deleted, the operator's never touches KV."""
    prefix = "g" + uuid.uuid4().hex[:8]
    seed = tmp_path / "aisopod.json"
    seed.write_text(
        orjson.dumps({**SEED, "gateway": {**SEED["gateway"], "presenceGraceMs": 30_000}}).decode()
    )
    nc = await nats.connect(nats_url)
    auth = await serve_auth(nc, prefix)
    _host, stop, task, port = await start_gateway(nats_url, prefix, seed, "ws-unit-grace")
    watcher = await (await nc.jetstream().key_value(bucket_name(prefix, "presence"))).watchall()
    updates: list[tuple[str, str]] = []

    async def collect() -> None:
        async for update in watcher:  # until watcher.stop() (a cancel may be lost in updates())
            if update is not None:
                updates.append((update.key, update.operation or "PUT"))

    collector = asyncio.create_task(collect())
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        operator = await WsClient.connect(url, token="admin-token")
        node = await WsClient.connect(
            url, token="node-token", role="node", scopes=[], client={**_CLIENT, "mode": "node"}
        )
        operator_id = operator.hello["server"]["connId"]
        node_id = node.hello["server"]["connId"]
        listed = await operator.call("system-presence")
        assert {operator_id, node_id} <= {p["connId"] for p in listed}
        deadline = asyncio.get_running_loop().time() + 10
        while (node_id, "PUT") not in updates:
            assert asyncio.get_running_loop().time() < deadline, "the node was not written"
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
        deadline = asyncio.get_running_loop().time() + 10
        while (node_id, "DEL") not in updates:
            assert asyncio.get_running_loop().time() < deadline, "the node was not deleted"
            await asyncio.sleep(0.02)
        assert [op for key, op in updates if key == operator_id] == []
        await operator.close()
        await node.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await watcher.stop()
        await collector
        await auth.unsubscribe()
        await nc.close()
