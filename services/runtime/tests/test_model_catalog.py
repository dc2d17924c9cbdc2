"""The runtime's model discovery published to KV (models.py) against a real nats-server:
stored for the edges, adopted by another replica instead of asked again, no two replicas
overwriting each other, failures kept briefly, entries of removed providers dropped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.config.sections.providers import ProviderConfig
from aisopod.jsread import live_keys
from aisopod.listings import ProviderDiscovery, discovery_key, provider_fingerprint
from aisopod_runtime.models import FAILURE_CACHE_S, ModelCatalog
from aisopod_runtime.providers import DiscoveredModel, ProviderError
from aisopod_runtime.service import RuntimeService

FAKE = ProviderConfig(id="fake", base_url="http://127.0.0.1:9/v1")


class Upstream:
    """A provider whose `/models` answer the test sets, counting the times it is asked."""

    def __init__(self, *ids: str) -> None:
        self.ids = list(ids)
        self.asked = 0
        self.down = False

    async def list_models(self) -> list[DiscoveredModel]:
        self.asked += 1
        await asyncio.sleep(0)  # an await, as a real request has: lets replicas interleave
        if self.down:
            raise ProviderError("fake: /models failed: refused", kind="connection")
        return [DiscoveredModel(i, 4096) for i in self.ids]


@dataclass
class Registry:
    upstream: Upstream
    configs: dict[str, ProviderConfig] = field(default_factory=lambda: {"fake": FAKE})

    def get(self, provider_id: str) -> Any:
        return self.upstream if provider_id in self.configs else None


@dataclass
class Models:
    models_cache_s: float = 300.0


@dataclass
class Config:
    models: Models = field(default_factory=Models)


@dataclass
class Parts:
    providers: Registry
    config: Config = field(default_factory=Config)


def catalog(kv: KeyValue, upstream: Upstream) -> ModelCatalog:
    return ModelCatalog(cast(RuntimeService, Parts(Registry(upstream))), kv)


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    yield await nc.jetstream().create_key_value(
        config=KeyValueConfig(bucket=f"models_{uuid.uuid4().hex[:8]}")
    )
    await nc.close()


async def stored(kv: KeyValue) -> ProviderDiscovery:
    entry = await kv.get(discovery_key("fake"))
    return ProviderDiscovery.model_validate(codec.loads(entry.value or b""))


async def test_a_discovery_is_stored_and_another_replica_adopts_it(kv: KeyValue) -> None:
    upstream = Upstream("fake-small", "fake-large")
    first = catalog(kv, upstream)
    listed = await first.list()
    assert [(m.id, m.source) for m in listed] == [
        ("fake/fake-small", "upstream"),
        ("fake/fake-large", "upstream"),
    ]
    entry = await stored(kv)
    assert entry.ok and entry.fingerprint == provider_fingerprint(FAKE)
    assert entry.expires_at_ms - entry.fetched_at_ms == 300_000
    assert [m.id for m in entry.models] == ["fake-small", "fake-large"]
    # Another runtime replica answers from the stored entry: the upstream is not asked again.
    second = catalog(kv, upstream)
    assert await second.list() == listed
    assert upstream.asked == 1


async def test_replicas_refreshing_at_once_keep_one_entry(kv: KeyValue) -> None:
    upstreams = [Upstream("m"), Upstream("m"), Upstream("m")]
    replicas = [catalog(kv, u) for u in upstreams]
    answers = await asyncio.gather(*(r.current(FAKE) for r in replicas))
    kept = await stored(kv)
    # Whoever lost the compare-and-set took the winner's entry instead of overwriting it.
    assert all(a == kept for a in answers)
    assert sum(u.asked for u in upstreams) >= 1


async def test_a_failed_discovery_is_kept_briefly_and_lists_configured_models(
    kv: KeyValue,
) -> None:
    upstream = Upstream("m")
    upstream.down = True
    listed = await catalog(kv, upstream).list()
    assert listed == []
    entry = await stored(kv)
    assert not entry.ok and entry.models == []
    assert entry.expires_at_ms - entry.fetched_at_ms == FAILURE_CACHE_S * 1000


async def test_changed_settings_are_discovered_again(kv: KeyValue) -> None:
    upstream = Upstream("m")
    replica = catalog(kv, upstream)
    await replica.list()
    moved = FAKE.model_copy(update={"base_url": "http://127.0.0.1:10/v1"})
    replica.parts.providers.configs["fake"] = moved
    upstream.ids = ["n"]
    assert [m.id for m in await replica.list()] == ["fake/n"]
    assert upstream.asked == 2
    assert (await stored(kv)).fingerprint == provider_fingerprint(moved)


async def test_the_refresher_stores_without_a_reader_and_drops_removed_providers(
    kv: KeyValue,
) -> None:
    upstream = Upstream("m")
    replica = catalog(kv, upstream)
    await replica.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while upstream.asked == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert [m.id for m in (await stored(kv)).models] == ["m"]
        del replica.parts.providers.configs["fake"]
        replica.providers_changed()
        while await _keys(kv) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert await _keys(kv) == []
    finally:
        await replica.stop()


async def _keys(kv: KeyValue) -> list[str]:
    return await live_keys(kv)
