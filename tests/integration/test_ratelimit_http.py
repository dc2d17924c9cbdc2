"""The ratelimit service behind the real stack's edge, through Traefik (http-api and
ws-gateway ask it over NATS, `ratelimit.edge`, for every API request and upgrade).

Each test installs a small rule set through the live configuration (KV `config`, waits
until every ratelimit replica runs it), then restores the original. Distinct client IPs
are simulated with X-Forwarded-For from the loopback peer, which Traefik trusts in the
local stack; each test uses its own random addresses so no test sees another's windows.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import nats
import pytest
import websockets

from aisopod import codec
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore

pytestmark = pytest.mark.integration

PREFLIGHT = {"Origin": "http://ui.example", "Access-Control-Request-Method": "POST"}


def random_ip() -> str:
    """A fresh documentation-range address (198.18.0.0/15, benchmarking)."""
    return f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def admin_nats(stack: Any) -> nats.NATS:
    return await nats.connect(
        stack.nats_url, user="admin", password=stack.nats_password("admin"), connect_timeout=2
    )


async def wait_for_hash(
    nc: nats.NATS, config_hash: str, replicas: int, timeout: float = 10.0
) -> None:
    """Until every ratelimit replica reports running `config_hash`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("aisopod.control.config.report", b"", reply=inbox)
        hashes: dict[str, str] = {}
        try:
            while len(hashes) < 64:
                msg = await sub.next_msg(timeout=0.2)
                body = codec.loads(msg.data)
                if body["service"] == "ratelimit":
                    hashes[body["instance"]] = body["hash"]
        except nats.errors.TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        if len(hashes) >= replicas and set(hashes.values()) == {config_hash}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"ratelimit replicas did not apply {config_hash[:12]} in {timeout}s")


@asynccontextmanager
async def live_rules(stack: Any, *rules: dict[str, Any]) -> AsyncIterator[None]:
    """Run the block with `rules` replacing those of the same name in the live config
    (the other rules, routes and exemptions stay), then restore the original."""
    nc = await admin_nats(stack)
    replicas = len(stack.pids.get("ratelimit", [1]))
    store = ConfigStore(await nc.jetstream().key_value("config"))
    try:
        original = await store.load()
        document = original.config.document()
        names = {rule["name"] for rule in rules}
        kept = [r for r in document["limits"]["rules"] if r["name"] not in names]
        document["limits"] = {**document["limits"], "rules": [*kept, *rules]}
        written = await store.write(GatewayConfig.model_validate(document), original.hash)
        await wait_for_hash(nc, written.hash, replicas)
        try:
            yield
        finally:
            current = await store.load()
            restored = await store.write(original.config, current.hash)
            await wait_for_hash(nc, restored.hash, replicas)
    finally:
        await nc.close()


def client(stack: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.http_url,
        headers={"Authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
        trust_env=False,
    )


async def get(c: httpx.AsyncClient, path: str, ip: str, **headers: str) -> httpx.Response:
    return await c.get(path, headers={"X-Forwarded-For": ip, **headers})


def assert_limited(response: httpx.Response, limit: int) -> int:
    """A 429 from the ratelimit service; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


async def test_the_request_past_the_limit_gets_429_with_a_correct_retry_after(stack) -> None:
    ip = random_ip()
    async with live_rules(stack, {"name": "http", "limit": 3, "windowS": 30}), client(stack) as c:
        started = time.monotonic()
        for _ in range(3):
            assert (await get(c, "/v1/models", ip)).status_code != 429
        refused = await get(c, "/v1/models", ip)
        elapsed = time.monotonic() - started
        retry_after = assert_limited(refused, 3)
        # The first request leaves the window 30 s after it was admitted.
        assert math.ceil(30 - elapsed) <= retry_after <= 30
        assert refused.json()["error"]["type"] == "rate_limit_error"  # OpenAI shape on /v1
        other_surface = await get(c, "/status", ip)
        assert_limited(other_surface, 3)
        assert other_surface.json()["ok"] is False
        assert other_surface.json()["error"]["type"] == "RATE_LIMITED"
        assert len(other_surface.headers["x-request-id"]) == 32  # a refusal is quotable too
        quoted = await get(c, "/status", ip, **{"X-Request-Id": "support-case-42"})
        assert quoted.status_code == 429 and quoted.headers["x-request-id"] == "support-case-42"
        assert "retry-after" in other_surface.headers["access-control-expose-headers"].lower()


async def test_other_client_ips_are_unaffected(stack) -> None:
    noisy, quiet = random_ip(), random_ip()
    async with live_rules(stack, {"name": "http", "limit": 2, "windowS": 30}), client(stack) as c:
        for _ in range(2):
            await get(c, "/status", noisy)
        assert_limited(await get(c, "/status", noisy), 2)
        for _ in range(2):
            assert (await get(c, "/status", quiet)).status_code != 429


async def test_the_window_slides(stack) -> None:
    """Two slots in 3 s: after the first request leaves, exactly one slot is free again
    (the second still counts), which fixed buckets would not give."""
    ip = random_ip()
    async with live_rules(stack, {"name": "http", "limit": 2, "windowS": 3}), client(stack) as c:
        first_sent = time.monotonic()
        assert (await get(c, "/status", ip)).status_code != 429
        await asyncio.sleep(1.5)  # the scenario's spacing, not a wait for a condition
        second_sent = time.monotonic()
        assert (await get(c, "/status", ip)).status_code != 429
        retry_after = assert_limited(await get(c, "/status", ip), 2)
        assert retry_after <= 2  # the first leaves ~1.5 s from now, not a whole window
        deadline = time.monotonic() + 10
        while (await get(c, "/status", ip)).status_code == 429:
            assert time.monotonic() < deadline, "the window never slid"
            await asyncio.sleep(0.05)
        assert time.monotonic() - first_sent >= 3 - 0.05
        # Only the first left: the second holds its slot until ~second_sent + 3.
        if time.monotonic() < second_sent + 2.9:
            assert_limited(await get(c, "/status", ip), 2)


async def test_a_lockout_lasts_its_configured_time(stack) -> None:
    ip = random_ip()
    rule = {"name": "http", "limit": 2, "windowS": 1, "lockoutS": 3}
    async with live_rules(stack, rule), client(stack) as c:
        for _ in range(2):
            assert (await get(c, "/status", ip)).status_code != 429
        locked_at = time.monotonic()
        assert assert_limited(await get(c, "/status", ip), 2) == 3
        deadline = locked_at + 10
        retry_afters = []
        while (response := await get(c, "/status", ip)).status_code == 429:
            retry_afters.append(int(response.headers["retry-after"]))
            assert time.monotonic() < deadline, "the lockout never ended"
            await asyncio.sleep(0.1)
        # Refused well past the 1 s window, admitted again once the 3 s are over.
        assert time.monotonic() - locked_at >= 3 - 0.05
        assert retry_afters == sorted(retry_afters, reverse=True)  # attempts don't extend it


async def test_the_websocket_upgrade_path_is_limited(stack) -> None:
    ip = random_ip()
    ws_rule = {"name": "ws_connect", "limit": 2, "windowS": 30}
    async with live_rules(stack, ws_rule), client(stack) as c:
        statuses = []
        for _ in range(3):
            statuses.append(await _ws_status(stack.ws_url, ip))
        assert 429 not in statuses[:2]
        assert statuses[2] == 429
        # The HTTP rule of the same client is a separate window.
        assert (await get(c, "/status", ip)).status_code != 429


async def _ws_status(url: str, ip: str) -> int:
    """101 when the upgrade went through, else the refusal's HTTP status."""
    try:
        async with websockets.connect(
            url, additional_headers={"X-Forwarded-For": ip}, open_timeout=5
        ):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        if exc.response.status_code == 429:
            assert int(exc.response.headers["Retry-After"]) >= 1
        return exc.response.status_code


async def test_cors_preflights_are_never_counted(stack) -> None:
    ip = random_ip()
    async with live_rules(stack, {"name": "http", "limit": 2, "windowS": 30}), client(stack) as c:
        for _ in range(5):
            preflight = await c.options(
                "/v1/chat/completions", headers={"X-Forwarded-For": ip, **PREFLIGHT}
            )
            assert preflight.status_code != 429
        for _ in range(2):
            assert (await get(c, "/v1/models", ip)).status_code != 429
        assert_limited(await get(c, "/v1/models", ip), 2)


async def test_preflights_reaching_ws_are_not_counted(stack) -> None:
    """/ws has no CORS middleware, so a preflight there reaches ws-gateway: only upgrades
    count."""
    ip = random_ip()
    ws_rule = {"name": "ws_connect", "limit": 1, "windowS": 30}
    async with live_rules(stack, ws_rule), client(stack) as c:
        for _ in range(3):
            response = await c.options("/ws", headers={"X-Forwarded-For": ip, **PREFLIGHT})
            assert response.status_code != 429
        assert await _ws_status(stack.ws_url, ip) != 429
        assert await _ws_status(stack.ws_url, ip) == 429


async def test_a_live_config_change_takes_effect_without_restart(stack) -> None:
    ip = random_ip()
    pids = dict(stack.pids)
    async with client(stack) as c:
        async with live_rules(stack, {"name": "http", "limit": 2, "windowS": 60}):
            for _ in range(2):
                await get(c, "/status", ip)
            assert_limited(await get(c, "/status", ip), 2)
        # Raised while the window is kept: two more fit, then the new limit refuses.
        async with live_rules(stack, {"name": "http", "limit": 4, "windowS": 60}):
            for _ in range(2):
                assert (await get(c, "/status", ip)).status_code != 429
            assert_limited(await get(c, "/status", ip), 4)
    assert stack.pids == pids


async def test_nats_check_fail_status_reset(stack) -> None:
    key = f"ip:{random_ip()}"
    rule = {"name": "auth_failures", "limit": 3, "windowS": 60, "lockoutS": 300}
    async with live_rules(stack, rule):
        nc = await admin_nats(stack)
        try:

            async def call(verb: str, **body: Any) -> Any:
                msg = await nc.request(f"aisopod.ratelimit.{verb}", codec.dumps(body), timeout=5)
                return codec.loads(msg.data)

            assert (await call("status", rule="auth_failures", key=key))["result"]["allowed"]
            results = [
                (await call("fail", rule="auth_failures", key=key))["result"] for _ in range(3)
            ]
            assert [r["allowed"] for r in results] == [True, True, False]
            assert results[2]["locked"] and results[2]["retryAfterMs"] == 300_000
            status = (await call("status", rule="auth_failures", key=key))["result"]
            assert status["locked"] and not status["allowed"]
            assert (await call("reset", rule="auth_failures", key=key))["result"] == {"ok": True}
            assert (await call("status", rule="auth_failures", key=key))["result"]["allowed"]
            check = (await call("check", rule="http", key=key, cost=5))["result"]
            assert (check["allowed"], check["remaining"]) == (True, check["limit"] - 5)
            unknown = await call("check", rule="no-such-rule", key=key)
            assert unknown["error"]["code"] == -32602
        finally:
            await nc.close()
