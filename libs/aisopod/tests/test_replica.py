"""KvReplica against a real nats-server: warm-up, updates and deletes, read-your-writes
waits, and the memory bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from aisopod.replica import KvReplica


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = "r" + uuid.uuid4().hex[:8]
    bucket = await js.create_key_value(config=KeyValueConfig(bucket=name))
    yield bucket
    await js.delete_key_value(name)
    await nc.close()


async def warm(replica: KvReplica, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not replica.warm:
        assert asyncio.get_running_loop().time() < deadline, "replica never warmed"
        await asyncio.sleep(0.02)


async def test_follows_the_bucket_and_waits_for_a_written_revision(kv: KeyValue) -> None:
    await kv.put("agent.a", b'{"id":"a"}')
    await kv.put("other.x", b"{}")  # not under the prefix: counted in revision, not kept
    replica = KvReplica("agents", kv, "agent.")
    await replica.start()
    try:
        await warm(replica)
        assert replica.entries == {"agent.a": b'{"id":"a"}'}
        assert replica.revision == await replica.last_revision()

        written = await kv.put("agent.b", b'{"id":"b"}')
        assert await replica.wait_for(written, 5.0)
        assert set(replica.entries) == {"agent.a", "agent.b"}

        await kv.delete("agent.a")
        assert await replica.wait_for(await replica.last_revision(), 5.0)
        assert set(replica.entries) == {"agent.b"}
        assert replica.size == len(b'{"id":"b"}')

        # A revision that never comes: the wait gives up within its bound.
        assert not await replica.wait_for(await replica.last_revision() + 100, 0.2)
    finally:
        await replica.stop()


async def test_an_empty_bucket_is_warm(kv: KeyValue) -> None:
    replica = KvReplica("cron", kv, "job.")
    await replica.start()
    try:
        await warm(replica)
        assert replica.entries == {}
    finally:
        await replica.stop()


async def test_over_its_bound_the_replica_drops_its_copy_and_stays_cold(kv: KeyValue) -> None:
    for n in range(3):
        await kv.put(f"job.{n}", b"{}")
    replica = KvReplica("cron", kv, "job.", max_entries=2)
    await replica.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not replica.overflow:
            assert asyncio.get_running_loop().time() < deadline, "bound never hit"
            await asyncio.sleep(0.02)
        assert not replica.warm and replica.entries == {} and replica.size == 0
    finally:
        await replica.stop()


async def test_a_keys_only_replica_counts_without_the_values(kv: KeyValue) -> None:
    await kv.put("s.one", b'{"big": "value"}')
    replica = KvReplica("sessions", kv, "", keep_values=False, ttl_s=45.0)
    await replica.start()
    try:
        await warm(replica)
        assert replica.entries == {"s.one": b""} and replica.size == 0
        written = await kv.put("s.two", b"{}")
        assert await replica.wait_for(written, 5.0)
        assert replica.live_count() == 2
        await kv.delete("s.one")
        assert await replica.wait_for(await replica.last_revision(), 5.0)
        assert set(replica.entries) == {"s.two"} and set(replica.written_at) == {"s.two"}
        # Entries past the bucket's max age are gone from the server without a marker:
        # counted by their write time.
        stamp = replica.written_at["s.two"]
        assert replica.live_count(now_s=stamp + 44.0) == 1
        assert replica.live_count(now_s=stamp + 46.0) == 0
    finally:
        await replica.stop()
