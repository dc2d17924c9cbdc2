"""`get_json` on the lean path answers what nats-py's `KeyValue.get` answers, case by case."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import InvalidKeyError, KeyNotFoundError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.bus import Bus
from aisopod.jsretry import ElectionTolerantJetStream
from aisopod.settings import ServiceSettings
from aisopod_runtime.kvview import get_json


async def nats_py_answer(kv: KeyValue, key: str) -> tuple[dict[str, object], int] | None:
    """What `get_json` answered before the lean path: nats-py's own read."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    if entry.operation is not None or entry.value is None:
        return None
    return codec.loads(entry.value), entry.revision or 0


@pytest.fixture
async def buckets(nats_url: str) -> AsyncIterator[tuple[KeyValue, KeyValue]]:
    """One bucket, seen through a Bus (lean path) and through a plain nats-py client."""
    bus = await Bus.connect(
        ServiceSettings(service="test", nats_url=nats_url, subject_prefix="kv" + uuid.uuid4().hex)
    )
    plain = await nats.connect(nats_url)
    name = "kvview_" + uuid.uuid4().hex[:10]
    try:
        lean = await bus.js.create_key_value(KeyValueConfig(bucket=name))
        assert isinstance(bus.js, ElectionTolerantJetStream) and bus.js.lean
        yield lean, await plain.jetstream().key_value(name)
    finally:
        await plain.close()
        await bus.close()


async def test_values_absent_keys_and_markers_read_as_nats_py_reads_them(
    buckets: tuple[KeyValue, KeyValue],
) -> None:
    lean, plain = buckets
    await lean.put("found", b'{"a": 1, "b": [true, null]}')
    await lean.put("found", b'{"a": 2}')  # the latest value and its revision
    await lean.put("deleted", b'{"a": 1}')
    await lean.delete("deleted")
    await lean.put("purged", b'{"a": 1}')
    await lean.purge("purged")
    await lean.put("empty", b"")
    await lean.create("made.by-create", b'{"c": "d"}')  # stored with headers
    keys = ["found", "deleted", "purged", "empty", "made.by-create", "never", "a/b_c=d"]
    for key in keys:
        assert await get_json(lean, key) == await nats_py_answer(plain, key), key
        assert await get_json(plain, key) == await nats_py_answer(plain, key), key
    assert await get_json(lean, "found") == ({"a": 2}, 2)
    assert await get_json(lean, "made.by-create") == ({"c": "d"}, 8)
    for key in ("deleted", "purged", "empty", "never"):
        assert await get_json(lean, key) is None, key


async def test_a_key_nats_py_refuses_is_refused_the_same_way(
    buckets: tuple[KeyValue, KeyValue],
) -> None:
    lean, plain = buckets
    for key in ("", ".a", "a.", "a b", "a*"):
        with pytest.raises(InvalidKeyError):
            await plain.get(key)
        with pytest.raises(InvalidKeyError):
            await get_json(lean, key)


async def test_a_bucket_gone_reads_as_no_value(
    nats_url: str, buckets: tuple[KeyValue, KeyValue]
) -> None:
    lean, plain = buckets
    await lean.put("k", b"{}")
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().delete_key_value(plain._name)
    finally:
        await nc.close()
    assert await nats_py_answer(plain, "k") is None
    assert await get_json(lean, "k") is None
