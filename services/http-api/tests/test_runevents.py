"""RunEvents against a real nats-server: subscribed only while a request listens, and then
every `chat.event` of the listened session arrives, from the first one on."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import nats
import orjson
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order
from aisopod.settings import nats_servers
from aisopod.subjects import Subjects
from aisopod_http_api.runevents import CHAT, RunEvents

Pair = tuple[RunEvents, NATS, str]


@pytest.fixture
async def pair(nats_url: str) -> AsyncIterator[Pair]:
    """The events of one process (linger 0.1 s) and its connection, and a runtime double on
    a connection of its own: asked to run, it publishes the run's events and then answers,
    as the runtime does (its events come after the request, never before)."""
    prefix = "re" + uuid.uuid4().hex[:8]
    ours = await nats.connect(nats_servers(nats_url))
    runtime = await nats.connect(nats_servers(nats_url))

    async def run(msg: Msg) -> None:
        asked = orjson.loads(msg.data)
        for seq in asked["seqs"]:
            event = {"runId": "r1", "sessionKey": asked["key"], "seq": seq, "state": "delta"}
            await runtime.publish(f"{prefix}.evt.{asked['name']}", orjson.dumps(event))
        await msg.respond(b"{}")

    await runtime.subscribe(f"{prefix}.rpc.agent", cb=run)
    await flush_in_order(runtime, 5)
    events = RunEvents(Bus(ours, Subjects(prefix)), linger_s=0.1)
    await events.start()
    try:
        yield events, ours, prefix
    finally:
        await events.stop()
        await ours.close()
        await runtime.close()


async def start_run(
    nc: NATS, prefix: str, session_key: str, seqs: list[int], name: str = CHAT
) -> None:
    """Ask the runtime double for a run; it has published the run's events when this returns."""
    asked = {"key": session_key, "seqs": seqs, "name": name}
    await nc.request(f"{prefix}.rpc.agent", orjson.dumps(asked), timeout=5)


async def received(nc: NATS) -> int:
    """Messages the connection has read so far (after a round trip: all sent before)."""
    await nc.flush()
    return int(nc.stats["in_msgs"])


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_nothing_is_received_while_nobody_listens(pair: Pair) -> None:
    events, ours, prefix = pair
    assert not events.subscribed
    before = await received(ours)
    await start_run(ours, prefix, "agent:main:a", [1, 2])
    assert await received(ours) == before + 1  # the answer alone


async def test_a_listener_gets_every_event_from_the_first(pair: Pair) -> None:
    events, ours, prefix = pair
    async with events.listen("agent:main:a") as listener:
        assert events.subscribed
        await start_run(ours, prefix, "agent:main:other", [9])
        await start_run(ours, prefix, "agent:main:a", [1, 2, 3])
        got = [await asyncio.wait_for(listener.next(), 5) for _ in range(3)]
    assert [e.payload["seq"] for e in got] == [1, 2, 3]
    assert {e.name for e in got} == {CHAT}


async def test_agent_events_are_not_received(pair: Pair) -> None:
    events, ours, prefix = pair
    async with events.listen("agent:main:a"):
        before = await received(ours)
        await start_run(ours, prefix, "agent:main:a", [1, 2], name="agent.event")
        assert await received(ours) == before + 1
        await start_run(ours, prefix, "agent:main:a", [3])
        assert await received(ours) == before + 3


async def test_the_subscription_lingers_then_goes_and_comes_back(pair: Pair) -> None:
    events, ours, prefix = pair
    async with events.listen("agent:main:a"):
        pass
    assert events.subscribed  # kept for the linger: the next request pays nothing
    async with events.listen("agent:main:b"):
        pass
    await until(lambda: not events.subscribed)
    before = await received(ours)
    await start_run(ours, prefix, "agent:main:a", [1])
    assert await received(ours) == before + 1
    async with events.listen("agent:main:a") as listener:
        await start_run(ours, prefix, "agent:main:a", [2])
        event = await asyncio.wait_for(listener.next(), 5)
    assert event.payload["seq"] == 2


async def test_listeners_arriving_together_all_hear_their_events(pair: Pair) -> None:
    events, ours, prefix = pair

    async def one(key: str) -> int:
        async with events.listen(key) as listener:
            await start_run(ours, prefix, key, [7])
            event = await asyncio.wait_for(listener.next(), 5)
            return int(event.payload["seq"])

    keys = [f"agent:main:s{n}" for n in range(5)]
    assert await asyncio.gather(*(one(k) for k in keys)) == [7] * 5
    await until(lambda: not events.subscribed)
