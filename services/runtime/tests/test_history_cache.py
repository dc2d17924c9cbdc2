"""The transcript cache serves exactly what a full read gives, whatever changed the subject.

Two stores on two connections stand for two runtime replicas; every read is compared with
a full read of the stream (the pre-cache way, `consume_all`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from aisopod import codec
from aisopod.bus import Bus
from aisopod.jsread import consume_all
from aisopod.subjects import Subjects
from aisopod_runtime.history import TranscriptCache
from aisopod_runtime.transcripts import TranscriptStore, new_message

Pair = tuple[TranscriptStore, TranscriptStore]


async def make_pair(nats_url: str, max_msgs: int = -1) -> tuple[Pair, list[Client]]:
    prefix = f"h{uuid.uuid4().hex[:10]}"
    clients = [await nats.connect(nats_url), await nats.connect(nats_url)]
    stores = [TranscriptStore(Bus(nc, Subjects(prefix))) for nc in clients]
    await (
        clients[0]
        .jetstream()
        .add_stream(
            StreamConfig(
                name=stores[0].stream,
                subjects=[f"{prefix}.transcript.>"],
                storage=StorageType.MEMORY,
                max_msgs=max_msgs,
                discard=DiscardPolicy.OLD,
            )
        )
    )
    return (stores[0], stores[1]), clients


@pytest.fixture
async def pair_factory(nats_url: str) -> AsyncIterator[Callable[..., Awaitable[Pair]]]:
    opened: list[tuple[TranscriptStore, list[Client]]] = []

    async def factory(max_msgs: int = -1) -> Pair:
        pair, clients = await make_pair(nats_url, max_msgs)
        opened.append((pair[0], clients))
        return pair

    yield factory
    for store, clients in opened:
        await store.bus.js.delete_stream(store.stream)
        for nc in clients:
            await nc.close()


async def truth(store: TranscriptStore, key: str, limit: int) -> list[dict[str, Any]]:
    messages = await consume_all(store.bus.js, store.stream, store.subject(key), limit=limit)
    return [codec.loads(m.data) for m in messages]


async def append(store: TranscriptStore, key: str, n: int) -> None:
    for i in range(n):
        await store.append(key, new_message("user" if i % 2 else "assistant", f"m{i}"))


async def check(store: TranscriptStore, key: str, limit: int) -> list[dict[str, Any]]:
    got = await store.read(key, limit)
    assert got == await truth(store, key, limit)
    return got


async def test_appends_are_read_incrementally(pair_factory) -> None:
    a, _ = await pair_factory()
    key = "agent:main:append"
    await append(a, key, 30)
    assert len(await check(a, key, 10)) == 10
    assert a.cache.stats.misses == 1
    for _ in range(3):
        await append(a, key, 2)
        assert len(await check(a, key, 10)) == 10
    assert a.cache.stats.hits == 3 and a.cache.stats.misses == 1
    tail = a.cache.tails[a.subject(key)]
    assert len(tail.items) == 10 and not tail.complete  # kept only what a read needs


async def test_another_replica_appending_is_seen(pair_factory) -> None:
    a, b = await pair_factory()
    key = "agent:main:two"
    await append(a, key, 5)
    await check(a, key, 50)
    await check(b, key, 50)
    await append(b, key, 7)
    got = await check(a, key, 50)
    assert len(got) == 12 and a.cache.stats.hits == 1


async def test_reset_by_another_replica_is_never_served_stale(pair_factory) -> None:
    a, b = await pair_factory()
    key = "agent:main:reset"
    await append(a, key, 8)
    await check(a, key, 5)
    await b.purge(key)  # sessions.reset on the other replica, then a new conversation
    await append(b, key, 3)
    got = await check(a, key, 5)
    assert [m["content"] for m in got] == ["m0", "m1", "m2"]
    assert a.cache.stats.invalidations == 1


async def test_delete_by_another_replica_leaves_nothing(pair_factory) -> None:
    a, b = await pair_factory()
    key = "agent:main:delete"
    await append(a, key, 4)
    await check(a, key, 10)
    await b.purge(key)
    assert await check(a, key, 10) == []
    await append(b, key, 1)  # the key used again: only the new message
    assert len(await check(a, key, 10)) == 1


async def test_own_purge_forgets_the_entry(pair_factory) -> None:
    a, _ = await pair_factory()
    key = "agent:main:own"
    await append(a, key, 4)
    await check(a, key, 10)
    await a.purge(key)
    assert a.subject(key) not in a.cache.tails
    assert await check(a, key, 10) == []


async def test_stream_limits_dropping_old_messages(pair_factory) -> None:
    a, _ = await pair_factory(max_msgs=10)
    key = "agent:main:limits"
    await append(a, key, 6)
    assert len(await check(a, key, 20)) == 6
    await append(a, key, 7)  # 13 written, the stream keeps the newest 10
    assert len(await check(a, key, 20)) == 10
    assert a.cache.stats.hits == 1  # trimmed, not reloaded
    await append(a, key, 25)  # everything cached is gone
    assert len(await check(a, key, 20)) == 10


async def test_stream_limits_with_other_sessions_writing(pair_factory) -> None:
    a, b = await pair_factory(max_msgs=10)
    key, other = "agent:main:mine", "agent:main:other"
    await append(a, key, 8)  # seq 1–8
    assert len(await check(a, key, 3)) == 3  # holds 6–8 of them
    await append(b, other, 8)  # 16 written: seq 1–6 dropped, ours left: 7, 8
    got = await check(a, key, 3)
    assert [m["content"] for m in got] == ["m6", "m7"]
    assert a.cache.stats.hits == 1  # the trimmed tail is known complete: no full read
    await append(b, key, 1)  # 17 written: m6 dropped too
    got = await check(a, key, 3)
    assert [m["content"] for m in got] == ["m7", "m0"]


async def test_a_trimmed_tail_that_new_messages_overflow_is_not_complete(
    pair_factory,
) -> None:
    a, b = await pair_factory(max_msgs=20)
    key, other = "agent:main:over", "agent:main:other"
    await append(a, key, 8)  # seq 1–8
    await check(a, key, 3)  # holds 6–8
    await append(b, other, 12)  # seq 9–20: full, nothing dropped yet
    await append(a, key, 3)  # seq 21–23
    await append(b, other, 3)  # seq 24–26: 1–6 dropped; ours: 7, 8, 21–23
    assert len(await check(a, key, 3)) == 3  # trimmed to 7, then 21–23 pushed 7, 8 out
    assert len(await check(a, key, 5)) == 5  # 7 and 8 are still in the stream


async def test_a_stream_made_again_is_not_mistaken_for_the_old(pair_factory) -> None:
    a, _ = await pair_factory()
    key = "agent:main:again"
    await append(a, key, 6)
    await check(a, key, 4)
    config = (await a.bus.js.stream_info(a.stream)).config
    await a.bus.js.delete_stream(a.stream)
    await a.bus.js.add_stream(config)  # sequences start at 1 again
    await a.append(key, new_message("user", "fresh"))
    await append(a, key, 6)
    got = await check(a, key, 4)
    assert [m["content"] for m in got] == ["m2", "m3", "m4", "m5"]
    assert a.cache.stats.invalidations == 1


async def test_a_larger_limit_than_cached_reads_again(pair_factory) -> None:
    a, _ = await pair_factory()
    key = "agent:main:grow"
    await append(a, key, 30)
    await check(a, key, 5)
    assert len(await check(a, key, 25)) == 25
    assert a.cache.stats.misses == 2
    assert len(await check(a, key, 5)) == 5  # the larger tail serves smaller limits
    assert a.cache.stats.hits == 1


async def test_restart_starts_cold_and_agrees(pair_factory, nats_url: str) -> None:
    a, _ = await pair_factory()
    key = "agent:main:restart"
    await append(a, key, 9)
    await check(a, key, 4)
    fresh = TranscriptStore(a.bus)  # a new process: an empty cache
    assert await fresh.read(key, 4) == await a.read(key, 4)
    assert fresh.cache.stats.misses == 1


async def test_bounded_by_sessions_and_bytes(pair_factory) -> None:
    a, _ = await pair_factory()
    a.cache = TranscriptCache(a.bus.js, a.stream, max_sessions=3, max_bytes=10_000)
    for i in range(5):
        await append(a, f"agent:main:s{i}", 3)
        await check(a, f"agent:main:s{i}", 10)
    assert list(a.cache.tails) == [a.subject(f"agent:main:s{i}") for i in (2, 3, 4)]
    big = "agent:main:big"
    await a.append(big, new_message("user", "x" * 6_000))
    await a.append(big, new_message("user", "y" * 6_000))
    await check(a, big, 10)  # alone over the byte bound: served, not kept
    assert a.subject(big) not in a.cache.tails
    assert a.cache.size <= 10_000
    await check(a, big, 1)  # one fits: kept, the others evicted as needed
    assert a.subject(big) in a.cache.tails and a.cache.size <= 10_000
