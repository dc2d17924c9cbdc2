"""The usage ledger's view answers exactly what a read of the stream gives, on either of two
replicas, as records arrive, for wider windows, and after the stream was made again."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig

from aisopod.bus import Bus
from aisopod.subjects import Subjects
from aisopod_runtime.usage.ledger import UsageLedger, shared_ledger

DAY_MS = 86_400_000
FIELDS = ("ts", "agentId", "model", "provider", "calls", "promptTokens", "completionTokens")


@pytest.fixture
async def ledgers(nats_url: str) -> AsyncIterator[tuple[UsageLedger, UsageLedger]]:
    prefix = f"u{uuid.uuid4().hex[:10]}"
    clients: list[Client] = [await nats.connect(nats_url), await nats.connect(nats_url)]
    pair = tuple(UsageLedger(Bus(nc, Subjects(prefix))) for nc in clients)
    config = StreamConfig(
        name=pair[0].stream, subjects=[f"{prefix}.usage.>"], storage=StorageType.MEMORY
    )
    await clients[0].jetstream().add_stream(config)
    yield pair[0], pair[1]
    for nc in clients:
        await nc.close()


def record(n: int, ts: int, agent: str = "main") -> dict:
    return {
        "runId": f"r{uuid.uuid4().hex[:8]}",
        "ts": ts,
        "sessionKey": f"agent:{agent}:s{n % 3}",
        "agentId": agent,
        "model": "p/m",
        "provider": "p",
        "calls": 1,
        "promptTokens": n,
        "completionTokens": 2 * n,
        "cacheReadTokens": 0,
        "cacheWriteTokens": 0,
    }


async def check(ledger: UsageLedger, since: int, until: int, agent: str | None = None) -> int:
    """The view's answer equals a read of the stream; the number of records."""
    got = await ledger.read(since, until, agent_id=agent)
    truth = await ledger._read_stream(since, until, agent_id=agent, session_key=None)
    assert [tuple(r[f] for f in FIELDS) for r in got] == [
        tuple(r[f] for f in FIELDS) for r in truth
    ]
    return len(got)


async def test_the_view_follows_both_replicas_and_wider_windows(ledgers) -> None:
    one, two = ledgers
    now = int(time.time() * 1000)
    for n in range(6):
        await (one if n % 2 else two).append(record(n, now - n * DAY_MS, "a" if n % 3 else "b"))
    assert await check(one, now - 2 * DAY_MS - 1, now + 1) == 3
    # New records, written by the other replica, are in the next read.
    await two.append(record(10, now + 5))
    await two.append(record(11, now + 6, "b"))
    assert await check(one, now - 2 * DAY_MS - 1, now + 10) == 5
    assert await check(one, now - 2 * DAY_MS - 1, now + 10, "b") == 2
    # A window reaching further back fills the view again from there.
    assert await check(one, now - 30 * DAY_MS, now + 10) == 8
    assert await check(one, now - DAY_MS, now + 6) == 3  # `until` excludes
    # Session reads go to the stream, with every field.
    session = await one.read(now - 30 * DAY_MS, now + 10, agent_id="a", session_key="agent:a:s1")
    assert session and all("runId" in r for r in session)


async def test_a_stream_made_again_starts_the_view_over(ledgers) -> None:
    one, _ = ledgers
    now = int(time.time() * 1000)
    for n in range(3):
        await one.append(record(n, now + n))
    assert await check(one, now - 1, now + 10) == 3
    js = one.bus.nc.jetstream()
    config = (await js.stream_info(one.stream)).config
    await js.delete_stream(one.stream)
    await js.add_stream(config)
    await one.append(record(7, now + 7))
    assert await check(one, now - 1, now + 10) == 1
    # Made again with as many records as before: its creation time tells.
    await js.delete_stream(one.stream)
    await js.add_stream(config)
    for n in range(4):
        await one.append(record(20 + n, now + n))
    assert await check(one, now - 1, now + 10) == 4


def test_one_ledger_per_bus(ledgers) -> None:
    one, two = ledgers
    assert shared_ledger(one.bus) is shared_ledger(one.bus)
    assert shared_ledger(one.bus) is not shared_ledger(two.bus)
