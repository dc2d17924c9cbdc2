"""http-api keeps ratelimit's `exempt` verdict for an address by route class (gate.py,
aisopod/exemptcache.py) against the real stack: repeated API calls from an exempt address,
on different paths of the one `http` class, ask `ratelimit.edge` once (the requests on the
subject are watched with an admin NATS client) and are counted on the replica's /metrics
instead; after a live config change that removes the exemption and sets a small `http`
limit, the very next calls are counted and the one past the limit gets HTTP 429 with
Retry-After and the OpenAI error body.

The exempt address is a fresh documentation-range one, exempted through the live
configuration (`limits.exemptCidrs`), so no other test's traffic touches it. Calls go to one
http-api replica directly (with the edge proof, `X-Forwarded-For` from loopback, a trusted
hop), so its counters are the ones that move.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.test_ratelimit_http import random_ip
from tests.integration.test_ws_exempt_cache import asks_for, live_limits
from tests.support.metrics import total
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration

CACHED = "aisopod_http_exempt_cached_total"
SERVICES = ("ratelimit", "http-api")


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:  # type: ignore[no-untyped-def]
    return await require_ws_stack(stack)


def http_api_url(stack: Any) -> str:
    record = json.loads((stack.state_dir / "stack.json").read_text())
    return str(record["service_urls"]["http-api"][0])


async def call(http: httpx.AsyncClient, env: WsStack, path: str, ip: str) -> httpx.Response:
    headers = {**env.edge, "X-Forwarded-For": ip, "Authorization": f"Bearer {env.token}"}
    return await http.get(path, headers=headers)


async def cached(http: httpx.AsyncClient, env: WsStack) -> float:
    # Read from an address of its own (not exempt): the read itself is never a cached one.
    return total((await call(http, env, "/metrics", random_ip())).text, CACHED)


async def test_an_exempt_address_is_asked_once_and_counted_again_after_a_change(
    env: WsStack, stack: Any
) -> None:
    ip = random_ip()
    nc = await env.nats()
    async with httpx.AsyncClient(base_url=http_api_url(stack), trust_env=False, timeout=10) as http:
        try:
            watched = await nc.subscribe("aisopod.ratelimit.edge")

            def exempt_ip(limits: dict[str, Any]) -> None:
                limits["exemptCidrs"] = [*limits.get("exemptCidrs", []), f"{ip}/32"]

            async with live_limits(stack, nc, exempt_ip, SERVICES) as rewrite:
                before = await cached(http, env)
                await asks_for(nc, watched, ip)  # nothing about this address yet; drains
                # Different paths, one route class: one verdict covers them all.
                paths = ["/v1/models", "/status", "/v1/models", "/v1/openapi.json", "/status"]
                statuses = [(await call(http, env, path, ip)).status_code for path in paths]
                assert statuses == [200] * 5
                assert await asks_for(nc, watched, ip) == 1
                assert await cached(http, env) - before == 4

                def count_it(limits: dict[str, Any]) -> None:
                    limits["exemptCidrs"] = [c for c in limits["exemptCidrs"] if c != f"{ip}/32"]
                    kept = [r for r in limits["rules"] if r["name"] != "http"]
                    limits["rules"] = [*kept, {"name": "http", "limit": 3, "windowS": 60}]

                await rewrite(count_it)
                responses = [await call(http, env, "/v1/models", ip) for _ in range(4)]
                assert [r.status_code for r in responses] == [200, 200, 200, 429]
                refused = responses[-1]
                assert int(refused.headers["Retry-After"]) >= 1
                assert refused.headers["X-RateLimit-Limit"] == "3"
                assert refused.json()["error"]["code"] == "rate_limit_exceeded"
                assert await asks_for(nc, watched, ip) == 4  # every one counted by ratelimit
                assert await cached(http, env) - before == 4
        finally:
            await nc.close()
