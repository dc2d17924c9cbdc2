"""`ratelimit.edge`: the per-route limit of an edge request, as http-api and ws-gateway ask
it (the route class picks the rule; the proven client IP is the key). Asked through the
responder the NATS reader calls (`EdgeResponder`), with the bytes a caller sends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

from aisopod import codec
from aisopod.bus import decode_reply
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigSnapshot
from aisopod.contracts.ratelimit import EdgeCheckResult
from aisopod.errors import InvalidParams
from aisopod.subjects import Subjects
from aisopod_ratelimit import nats_api
from aisopod_ratelimit.service import RateLimitService

from .clock import FakeClock

LIMITS = {
    "rules": [
        {"name": "http", "limit": 2, "windowS": 10},
        {"name": "ws_connect", "limit": 1, "windowS": 60, "lockoutS": 90},
        {"name": "per_route", "key": "ip_route", "limit": 1, "windowS": 10},
    ],
    "routes": [
        {"pathPrefix": "/ws", "rule": "ws_connect"},
        {"pathPrefix": "/v1", "rule": "per_route"},
        {"pathPrefix": "/status", "rule": "http"},
    ],
}


Edge = Callable[[Any, dict[str, str]], Awaitable[EdgeCheckResult]]


def asker(service: RateLimitService) -> Edge:
    """`ratelimit.edge` as a caller sees it: the request's bytes in, the reply decoded (an
    error reply raises its error). This one replica owns every key, so the responder
    always answers at once."""
    responder = nats_api.EdgeResponder(service)

    async def ask(payload: Any, _headers: dict[str, str]) -> EdgeCheckResult:
        reply = responder(b"_INBOX.test", codec.dumps(payload), None)
        assert reply is not None
        return EdgeCheckResult.model_validate(decode_reply(reply))

    return ask


@pytest.fixture
def edge() -> Edge:
    host: Any = SimpleNamespace(
        instance="ratelimit-test", bus=SimpleNamespace(subjects=Subjects("aisopod"))
    )
    service = RateLimitService(host, clock=FakeClock())
    service.apply(GatewayConfig.model_validate({"limits": LIMITS}))
    return asker(service)


async def test_the_route_class_picks_the_rule_and_the_ip_is_the_key(edge: Any) -> None:
    ip = "198.51.100.4"
    first = await edge({"path": "/status?x=1", "clientIp": ip}, {})
    assert first.allowed and first.counted and first.limit == 2 and first.remaining == 1
    assert (await edge({"path": "/status", "clientIp": ip}, {})).allowed
    refused = await edge({"path": "/status/deeper", "clientIp": ip}, {})
    assert not refused.allowed and refused.retry_after_ms > 0 and refused.reason == "limit"
    assert (await edge({"path": "/status", "clientIp": "198.51.100.5"}, {})).allowed


async def test_the_upgrade_limit_locks_out(edge: Any) -> None:
    ip = "2001:db8::7"
    assert (await edge({"path": "/ws", "clientIp": ip}, {})).allowed
    locked = await edge({"path": "/ws", "clientIp": "2001:db8::8"}, {})  # the same /64
    assert not locked.allowed and locked.retry_after_ms > 60_000


async def test_ip_route_rules_count_each_route_class_apart(edge: Any) -> None:
    ip = "198.51.100.9"
    assert (await edge({"path": "/v1/models", "clientIp": ip}, {})).allowed
    assert not (await edge({"path": "/v1/chat/completions", "clientIp": ip}, {})).allowed
    assert (await edge({"path": "/status", "clientIp": ip}, {})).allowed


async def test_uncovered_paths_are_not_counted_and_bad_requests_refused(edge: Any) -> None:
    uncovered = await edge({"path": "/elsewhere", "clientIp": "198.51.100.1"}, {})
    assert uncovered.allowed and not uncovered.counted
    for bad in (
        {"path": "/status"},
        {"clientIp": "198.51.100.1"},
        [],
        {"path": "", "clientIp": "x"},
    ):
        with pytest.raises(InvalidParams):
            await edge(bad, {})
    responder = nats_api.EdgeResponder(
        RateLimitService(
            SimpleNamespace(
                instance="ratelimit-test", bus=SimpleNamespace(subjects=Subjects("aisopod"))
            ),  # type: ignore[arg-type]
            clock=FakeClock(),
        )
    )
    for raw in (b"", b"not json"):
        with pytest.raises(InvalidParams):
            decode_reply(responder(b"_INBOX.test", raw, None) or b"")


async def test_default_limits_count_openclaw_upgrades_with_ws_and_its_assets_as_http() -> None:
    host: Any = SimpleNamespace(
        instance="ratelimit-test", bus=SimpleNamespace(subjects=Subjects("aisopod"))
    )
    service = RateLimitService(host, clock=FakeClock())
    service.apply(GatewayConfig())
    edge = asker(service)
    ip = "198.51.100.9"
    upgrades = [await edge({"path": path, "clientIp": ip}, {}) for path in ("/ws", "/openclaw")]
    assert all(u.allowed and u.limit == 60 for u in upgrades)
    assert upgrades[1].remaining == 58  # one window for both upgrade paths
    asset = await edge({"path": "/openclaw/assets/index.js", "clientIp": ip}, {})
    assert asset.allowed and asset.limit == 600 and asset.remaining == 599


def exempting(variant: int) -> GatewayConfig:
    """LIMITS with loopback exempt; `variant` makes a distinct document of the same rules."""
    limits = {**LIMITS, "exemptCidrs": ["127.0.0.0/8"], "cleanupIntervalS": variant}
    return GatewayConfig.model_validate({"limits": limits})


async def test_the_answer_names_the_config_revision_its_rules_came_from() -> None:
    """ws-gateway keeps an `exempt` answer while it runs the same revision: the reply says
    which one decided, for every answer decided here."""
    host: Any = SimpleNamespace(
        instance="ratelimit-test", bus=SimpleNamespace(subjects=Subjects("aisopod"))
    )
    service = RateLimitService(host, clock=FakeClock())
    service.apply(exempting(1), revision=7)
    edge = asker(service)
    exempt = await edge({"path": "/ws", "clientIp": "127.0.0.1"}, {})
    assert (exempt.allowed, exempt.reason, exempt.config_revision) == (True, "exempt", 7)
    counted = await edge({"path": "/ws", "clientIp": "198.51.100.7"}, {})
    assert (counted.reason, counted.config_revision) == ("ok", 7)
    refused = await edge({"path": "/ws", "clientIp": "198.51.100.7"}, {})
    assert (refused.reason, refused.config_revision) == ("lockout", 7)
    service.apply(exempting(1))  # applied without a known revision: none is claimed
    assert (await edge({"path": "/ws", "clientIp": "127.0.0.1"}, {})).config_revision is None


async def test_the_revision_follows_the_watchers_snapshot_of_the_same_document() -> None:
    first = exempting(1)
    watcher = SimpleNamespace(snapshot=ConfigSnapshot(first, first.hash(), 7))
    host: Any = SimpleNamespace(
        instance="ratelimit-test", bus=SimpleNamespace(subjects=Subjects("aisopod")), config=watcher
    )
    service = RateLimitService(host, clock=FakeClock())
    service.follow_config(first)
    assert service.config_revision() == 7
    # The same document stored again (no listener runs): the newer revision, same rules.
    watcher.snapshot = ConfigSnapshot(exempting(1), first.hash(), 9)
    assert service.config_revision() == 9
    # Another document the rules were not rebuilt from yet: still the rules' own revision.
    second = exempting(2)
    watcher.snapshot = ConfigSnapshot(second, second.hash(), 10)
    assert service.config_revision() == 7
    service.follow_config(second)
    assert service.config_revision() == 10
    # A listener handed something other than the watcher's document: no revision claimed.
    service.follow_config(exempting(3))
    assert service.config_revision() is None
