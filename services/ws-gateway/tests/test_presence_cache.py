"""The presence cache keeps no entry past the time it stops being listed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from aisopod_ws_gateway.presence import STALE_S, Presence


def presence() -> Presence:
    gateway = SimpleNamespace(host=SimpleNamespace(instance="here"))
    return Presence(cast(Any, gateway))


def test_prune_forgets_entries_not_refreshed_within_the_ttl() -> None:
    cache = presence()
    now = 1_000.0
    cache._cluster["old"] = (b'{"connId":"old"}', now - STALE_S - 1)
    cache._cluster["fresh"] = (b'{"connId":"fresh"}', now - STALE_S + 1)
    revision = cache.revision
    assert cache.prune_stale(now) == 1
    assert list(cache._cluster) == ["fresh"]
    assert cache.revision == revision + 1  # the snapshot is joined again


def test_prune_without_stale_entries_keeps_the_revision() -> None:
    cache = presence()
    cache._cluster["fresh"] = (b'{"connId":"fresh"}', 1_000.0)
    assert cache.prune_stale(1_000.0) == 0
    assert list(cache._cluster) == ["fresh"] and cache.revision == 0
