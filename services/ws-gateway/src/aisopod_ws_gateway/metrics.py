"""Prometheus metrics of the ws-gateway (served on /metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from aisopod.credcache import CredentialCache


class LoopCounter:
    """A counter bumped only on the event loop's thread: a plain int read at scrape time.
    prometheus_client's Counter takes a lock on every `inc`, which the per-frame and
    per-request counters would pay several times per request."""

    __slots__ = ("doc", "name", "value")

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.doc = doc
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class _LoopCounters:
    def __init__(self, *counters: LoopCounter) -> None:
        self.counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        for counter in self.counters:
            yield CounterMetricFamily(counter.name, counter.doc, value=counter.value)


CONNECTIONS = Gauge("aisopod_ws_connections", "open WebSocket connections (after hello)")
HANDSHAKES = Counter("aisopod_ws_handshakes_total", "handshakes by outcome", ["outcome"])
FRAMES_IN = LoopCounter("aisopod_ws_frames_in", "text frames received")
FRAMES_OUT = LoopCounter("aisopod_ws_frames_out", "responses and addressed frames sent")
REQUESTS = LoopCounter("aisopod_ws_requests", "requests after hello")
EDGE_READS = LoopCounter("aisopod_ws_edge_reads", "reads answered from the edge replicas")
EDGE_FALLBACKS = LoopCounter(
    "aisopod_ws_edge_fallbacks", "edge-served reads sent to the owner (cold, lagging, owner-only)"
)
EXEMPT_CACHED = LoopCounter(
    "aisopod_ws_exempt_cached",
    "upgrades admitted from a kept exempt verdict, not asked of ratelimit (so not in its "
    "decision counters)",
)
REGISTRY.register(
    _LoopCounters(FRAMES_IN, FRAMES_OUT, REQUESTS, EDGE_READS, EDGE_FALLBACKS, EXEMPT_CACHED)
)
ERRORS = Counter("aisopod_ws_internal_errors_total", "internal errors answered", ["name"])
EVENTS = Counter("aisopod_ws_events_total", "broadcast events received from the stream")
DELIVERIES = Counter("aisopod_ws_event_deliveries_total", "event frames written to clients")
EVENTS_DROPPED = Counter("aisopod_ws_events_dropped_total", "droppable events skipped")
SLOW_CONSUMERS = Counter("aisopod_ws_slow_consumers_total", "clients closed as slow consumers")


class _CredentialCacheCounters:
    """The verified-credential cache's hit/miss/clear counts, read at scrape time from the
    process's cache (one per gateway; an in-process test's newest gateway replaces it)."""

    def __init__(self) -> None:
        self.cache: CredentialCache | None = None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cache = self.cache
        if cache is None:
            return
        yield CounterMetricFamily(
            "aisopod_ws_credential_cache_hits",
            "handshakes admitted from the verified-credential cache (no auth.verify)",
            value=cache.hits,
        )
        yield CounterMetricFamily(
            "aisopod_ws_credential_cache_misses",
            "token handshakes asked of auth (not cached, expired, locked address, no generation)",
            value=cache.misses,
        )
        yield CounterMetricFamily(
            "aisopod_ws_credential_cache_clears",
            "times the cache was emptied (revocation, auth start/stop, config, reconnect)",
            value=cache.clears,
        )
        yield GaugeMetricFamily(
            "aisopod_ws_credential_cache_entries", "verified credentials kept", value=len(cache)
        )


_CREDENTIAL_CACHE = _CredentialCacheCounters()
REGISTRY.register(_CREDENTIAL_CACHE)


def register_credential_cache(cache: CredentialCache) -> None:
    _CREDENTIAL_CACHE.cache = cache
