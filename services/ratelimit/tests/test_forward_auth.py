"""`GET /check` as Traefik calls it, through the real ASGI app (no network)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from aisopod.config.model import GatewayConfig
from aisopod.rawasgi import answer_first
from aisopod_ratelimit.forward_auth import CheckEndpoint
from aisopod_ratelimit.service import RateLimitService

from .clock import FakeClock


def make_service(clock: FakeClock, limits: dict[str, Any]) -> RateLimitService:
    host: Any = SimpleNamespace(instance="ratelimit-test")
    service = RateLimitService(host, clock=clock)
    service.apply(GatewayConfig.model_validate({"limits": limits}))
    return service


LIMITS = {
    "rules": [
        {"name": "http", "limit": 2, "windowS": 10},
        {"name": "ws_connect", "limit": 1, "windowS": 60, "lockoutS": 90},
    ],
    "routes": [{"pathPrefix": "/ws", "rule": "ws_connect"}, {"pathPrefix": "/", "rule": "http"}],
}


async def _not_found(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock):
    service = make_service(clock, LIMITS)
    app = answer_first(_not_found, "/check", CheckEndpoint(service))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rl") as c:
        yield c


def forwarded(uri: str, ip: str = "203.0.113.9", method: str = "GET", **extra: str) -> dict:
    # As Traefik sends it: the client's chain plus the address Traefik saw (loopback).
    return {
        "X-Forwarded-Uri": uri,
        "X-Forwarded-Method": method,
        "X-Forwarded-For": f"{ip}, 127.0.0.1",
        **extra,
    }


async def test_admits_with_ratelimit_headers_then_429_in_the_openai_shape(client, clock) -> None:
    first = await client.get("/check", headers=forwarded("/v1/chat/completions"))
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["x-ratelimit-reset"] == "10"
    clock.advance(3.5)
    await client.get("/check", headers=forwarded("/v1/models"))
    refused = await client.get("/check", headers=forwarded("/v1/models?x=1"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "7"  # ceil(6.5 s until the first leaves)
    assert refused.headers["x-ratelimit-remaining"] == "0"
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "retry in 7 s" in error["message"]


async def test_other_surfaces_get_the_ok_false_shape(client) -> None:
    for _ in range(2):
        await client.get("/check", headers=forwarded("/tools/invoke", ip="198.51.100.1"))
    refused = await client.get("/check", headers=forwarded("/tools/invoke", ip="198.51.100.1"))
    assert refused.json() == {
        "ok": False,
        "error": {"type": "RATE_LIMITED", "message": refused.json()["error"]["message"]},
    }


async def test_other_client_ips_have_their_own_windows(client) -> None:
    for _ in range(3):
        await client.get("/check", headers=forwarded("/status", ip="198.51.100.2"))
    other = await client.get("/check", headers=forwarded("/status", ip="198.51.100.3"))
    assert other.status_code == 200


async def test_websocket_upgrades_use_their_own_rule_and_lockout(client, clock) -> None:
    ws = forwarded("/ws", ip="198.51.100.4", **{"X-Forwarded-Proto": "ws"})
    assert (await client.get("/check", headers=ws)).status_code == 200
    locked = await client.get("/check", headers=ws)
    assert (locked.status_code, locked.headers["retry-after"]) == (429, "90")
    assert "locked out" in locked.json()["error"]["message"]
    # The HTTP rule of the same IP is untouched.
    assert (
        await client.get("/check", headers=forwarded("/v1/models", ip="198.51.100.4"))
    ).status_code == 200
    clock.advance(89.2)
    assert (await client.get("/check", headers=ws)).headers["retry-after"] == "1"  # never 0
    clock.advance(1)
    assert (await client.get("/check", headers=ws)).status_code == 200


async def test_cors_preflights_are_never_counted(client) -> None:
    preflight = forwarded(
        "/v1/chat/completions",
        ip="198.51.100.5",
        method="OPTIONS",
        **{"Access-Control-Request-Method": "POST", "Origin": "http://ui.example"},
    )
    for _ in range(10):
        response = await client.get("/check", headers=preflight)
        assert response.status_code == 200
        assert "x-ratelimit-remaining" not in response.headers
    counted = await client.get("/check", headers=forwarded("/v1/models", ip="198.51.100.5"))
    assert counted.headers["x-ratelimit-remaining"] == "1"
    # A plain OPTIONS (no Access-Control-Request-Method) is a request like any other.
    plain = await client.get(
        "/check", headers=forwarded("/v1/models", ip="198.51.100.5", method="OPTIONS")
    )
    assert plain.headers["x-ratelimit-remaining"] == "0"


async def test_forwarded_for_is_believed_only_from_trusted_proxies(clock) -> None:
    service = make_service(clock, LIMITS)
    app = answer_first(_not_found, "/check", CheckEndpoint(service))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://rl") as c:
        for ip in ("198.51.100.6", "198.51.100.7"):  # spoofed: both count as 192.0.2.50
            await c.get("/check", headers=forwarded("/v1/models", ip=ip))
        refused = await c.get("/check", headers=forwarded("/v1/models", ip="198.51.100.8"))
    assert refused.status_code == 429


async def test_other_paths_reach_the_wrapped_app(client) -> None:
    assert (await client.get("/nope")).status_code == 404
