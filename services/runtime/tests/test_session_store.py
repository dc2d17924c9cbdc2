"""The runtime's sessions: `sessions.list` and label look-ups from the in-memory copy kept
by a KV watch, this store's own writes visible to its next read, and the bucket read while
the copy is cold or over its bound; the copy kept only while such reads come (a real
nats-server)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from aisopod.catalogue.sessions import SessionsListParams
from aisopod_runtime import sessions as sessions_module
from aisopod_runtime.sessions import SessionMemory, SessionStore


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = "s" + uuid.uuid4().hex[:8]
    bucket = await js.create_key_value(config=KeyValueConfig(bucket=name))
    yield bucket
    await js.delete_key_value(name)
    await nc.close()


async def warm(store: SessionStore) -> SessionMemory:
    """The copy a read started, once it holds the bucket."""
    memory = await asyncio.wait_for(store.memory_demand.ready(), 10)
    deadline = asyncio.get_running_loop().time() + 10
    while not memory.warm:
        assert asyncio.get_running_loop().time() < deadline, "never warmed"
        await asyncio.sleep(0.02)
    return memory


def no_bucket_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(*_: Any) -> Any:
        raise AssertionError("read the whole bucket")

    monkeypatch.setattr(sessions_module, "snapshot", refused)


async def test_reads_come_from_memory_and_see_this_stores_writes(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = SessionStore(kv)  # never started: reads the bucket, as before
    await cold.create("agent:main:old", "main")
    store = SessionStore(kv)
    await store.start()
    try:
        await store.all()  # the first read starts the copy (and reads the bucket)
        await warm(store)
        no_bucket_reads(monkeypatch)
        assert [e.key for e in await store.list(SessionsListParams())] == ["agent:main:old"]

        # Each write, then at once the next read: no wait for the watch in between.
        await store.create("agent:ops:new", "ops")
        assert [e.key for e in await store.list(SessionsListParams(agent_id="ops"))] == [
            "agent:ops:new"
        ]
        await store.touch("agent:main:old", "main", "Plan the   WEEK")
        listed = await store.list(SessionsListParams(search="week"))
        assert [(e.key, e.last_message) for e in listed] == [("agent:main:old", "Plan the WEEK")]
        await store.change("agent:ops:new", "ops", {"label": "Ops Desk"})
        assert [e.key for e in await store.labelled(" ops desk ", None)] == ["agent:ops:new"]
        await store.delete("agent:ops:new")
        assert [e.key for e in await store.list(SessionsListParams())] == ["agent:main:old"]
        assert await store.labelled("ops desk", None) == []
    finally:
        await store.stop()
    monkeypatch.undo()
    assert [e.key for e in await cold.list(SessionsListParams())] == ["agent:main:old"]


async def test_over_its_bound_the_store_reads_the_bucket(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(kv, memory_max_sessions=2)
    await store.start()
    for n in range(3):
        await store.create(f"agent:main:{n}", "main")
    try:
        await store.all()  # starts the copy
        memory = await asyncio.wait_for(store.memory_demand.ready(), 10)
        deadline = asyncio.get_running_loop().time() + 10
        while not memory.overflow:
            assert asyncio.get_running_loop().time() < deadline, "never over its bound"
            await asyncio.sleep(0.02)
        assert not memory.held  # dropped: every session comes from the bucket
        listed = await store.list(SessionsListParams())
        assert sorted(e.key for e in listed) == [f"agent:main:{n}" for n in range(3)]
    finally:
        await store.stop()


async def test_a_write_another_replica_finished_is_seen_by_the_next_read(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runtime replicas: a client's write through one, then its read through the other
    (the queue group picks either) sees the write, from memory."""
    writer, reader = SessionStore(kv), SessionStore(kv)
    await writer.start()
    await reader.start()
    try:
        await writer.all()
        await reader.all()
        await warm(writer)
        await warm(reader)
        no_bucket_reads(monkeypatch)
        for n in range(20):  # at once after each write: no wait for the reader's watch
            key = f"agent:main:twin-{n}"
            await writer.create(key, "main")
            await writer.change(key, "main", {"label": "Inbox"})
            assert key in {e.key for e in await reader.labelled("inbox", None)}
    finally:
        await writer.stop()
        await reader.stop()


async def test_the_copy_is_kept_only_while_reads_of_every_session_come(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No watch (no delivery of every session write) until a read of every session; the
    copy answers the reads that follow, and is dropped once none came for the idle time."""
    store = SessionStore(kv, memory_idle_s=0.3)
    await store.start()
    try:
        await store.create("agent:main:a", "main")
        await store.touch("agent:main:a", "main", "hello")
        # Writes and single-session reads need no copy.
        assert store.memory is None and not store.memory_demand.active
        assert [e.key for e in await store.all()] == ["agent:main:a"]  # from the bucket
        memory = await warm(store)
        with monkeypatch.context() as patched:
            patched.setattr(sessions_module, "snapshot", _refused)
            listed = await store.list(SessionsListParams())
            assert [(e.key, e.last_message) for e in listed] == [("agent:main:a", "hello")]
        deadline = asyncio.get_running_loop().time() + 10
        while store.memory is not None:  # idle: dropped, its watch stopped
            assert asyncio.get_running_loop().time() < deadline, "never dropped"
            await asyncio.sleep(0.05)
        # The next read reads the bucket and starts a new copy.
        await store.create("agent:main:b", "main")
        assert sorted(e.key for e in await store.all()) == ["agent:main:a", "agent:main:b"]
        assert store.memory_demand.active and await warm(store) is not memory
    finally:
        await store.stop()
    assert store.memory is None


async def _refused(*_: Any) -> Any:
    raise AssertionError("read the whole bucket")
