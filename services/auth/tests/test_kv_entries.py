"""`Entries` against a real JetStream KV: compare-and-set holds for deletes too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from aisopod_auth.kv import Entries


class Thing(BaseModel):
    name: str
    seen: int = 0


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    bucket = f"entries_{uuid.uuid4().hex[:8]}"
    yield await js.create_key_value(config=KeyValueConfig(bucket=bucket, history=1))
    await js.delete_key_value(bucket)
    await nc.close()


async def test_a_stale_delete_is_refused_like_a_stale_replace(kv: KeyValue) -> None:
    things = Entries(kv, "thing", Thing)
    first = await things.create("a", Thing(name="a"))
    await things.replace("a", Thing(name="a", seen=1), first)
    with pytest.raises(KeyWrongLastSequenceError):
        await things.delete("a", first)
    assert await things.load("a") == Thing(name="a", seen=1)


async def test_update_that_deletes_retries_over_a_concurrent_write(kv: KeyValue) -> None:
    """The device-removal race: a write lands between the read and the delete."""
    things = Entries(kv, "thing", Thing)
    await things.create("a", Thing(name="a"))
    seen: list[Thing | None] = []

    def remove(current: Thing | None) -> None:
        seen.append(current)
        return None

    original_get = things.get

    async def get_then_race(name: str):  # type: ignore[no-untyped-def]
        found = await original_get(name)
        if len(seen) == 0 and found is not None:
            await things.kv.put(things.key(name), b'{"name":"a","seen":5}')
        return found

    things.get = get_then_race  # type: ignore[method-assign]
    assert await things.update("a", remove) is None
    assert [t.seen if t else None for t in seen] == [0, 5]
    assert await things.load("a") is None
