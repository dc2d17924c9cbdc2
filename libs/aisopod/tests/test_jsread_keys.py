"""`jsread.snapshot` and `live_keys` against nats-server: the live entries of a bucket,
read with a pull consumer that knows how many to expect (nats-py's `KeyValue.keys()` can
report an empty bucket while its entries are on their way)."""

from __future__ import annotations

import uuid

import nats
from nats.js.api import KeyValueConfig

from aisopod.jsread import live_keys, snapshot


async def test_live_keys_and_snapshot_are_the_live_entries(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    bucket = "keys_" + uuid.uuid4().hex[:8]
    kv = await js.create_key_value(KeyValueConfig(bucket=bucket, history=3))
    try:
        assert await live_keys(kv) == []
        assert await snapshot(kv) == []
        for key in ("a.1", "a.2", "b.1", "b.2"):
            await kv.put(key, key.encode())
        await kv.put("a.1", b"again")  # the last value counts, once
        await kv.delete("a.2")
        await kv.purge("b.2")
        assert sorted(await live_keys(kv)) == ["a.1", "b.1"]
        assert await live_keys(kv, "a.>") == ["a.1"]
        assert {e.key: e.value for e in await snapshot(kv)} == {"a.1": b"again", "b.1": b"b.1"}
        # Many keys, more than one fetch's batch, none lost.
        for i in range(1200):
            await kv.put(f"c.{i}", b"x" * 64)
        assert len(await live_keys(kv, "c.>")) == 1200
    finally:
        await js.delete_key_value(bucket)
        await nc.close()
