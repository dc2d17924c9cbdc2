"""ws-gateway keeps ratelimit's `exempt` verdict for an address (exemptcache.py) against
the real stack: repeated upgrades from an exempt address ask `ratelimit.edge` once (the
requests on the subject are watched with an admin NATS client) and are counted on the
replica's /metrics instead; after a live config change that removes the exemption and sets
a small `ws_connect` limit, the very next upgrades are counted and the one past the limit
gets HTTP 429 with Retry-After. An upgrade admitted that way still orders a revocation
before its `connect` (the round trip it skipped did that): a revoked token is refused at
once, though the token was in the verified-credential cache.

The exempt address is a fresh documentation-range one, exempted for this test through the
live configuration in the same way as the stack exempts loopback (`limits.exemptCidrs`),
so no other test's traffic or earlier verdict touches it. Upgrades go to one ws-gateway
replica directly (with the edge proof, `X-Forwarded-For` from loopback, a trusted hop), so
its counters are the ones that move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import pytest
import websockets
from nats.aio.subscription import Subscription

from aisopod import codec
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from tests.integration.auth_support import Admin, remember
from tests.integration.test_ratelimit_http import random_ip
from tests.integration.test_ws_credential_cache import (
    HITS,
    READ,
    connected_once,
    counters,
    learn_generation,
    refused,
)
from tests.support.metrics import total
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration

CACHED = "aisopod_ws_exempt_cached_total"


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def applied_everywhere(nc: nats.NATS, config_hash: str, replicas: dict[str, int]) -> None:
    """Until every replica of each service in `replicas` reports running `config_hash`."""
    deadline = time.monotonic() + 20
    while True:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("aisopod.control.config.report", b"", reply=inbox)
        hashes: dict[tuple[str, str], str] = {}
        try:
            while True:
                msg = await sub.next_msg(timeout=0.2)
                body = codec.loads(msg.data)
                if body["service"] in replicas:
                    hashes[body["service"], body["instance"]] = body["hash"]
        except nats.errors.TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        running = {
            service: sum(1 for (s, _), h in hashes.items() if s == service and h == config_hash)
            for service in replicas
        }
        if all(running[service] >= count for service, count in replicas.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not every replica applied {config_hash[:12]}: {hashes}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def live_limits(
    stack: Any,
    nc: nats.NATS,
    change: Callable[[dict[str, Any]], None],
    services: tuple[str, ...] = ("ratelimit", "ws-gateway"),
) -> AsyncIterator[Callable[[Callable[[dict[str, Any]], None]], Any]]:
    """The block runs with `change` applied to the live `limits` section, once every
    replica of `services` runs it; it may change them again (the yielded coroutine
    function, same waiting); the original is restored afterwards."""
    replicas = {service: len(stack.pids.get(service, [1])) for service in services}
    store = ConfigStore(await nc.jetstream().key_value("config"))
    original = await store.load()

    async def rewrite(edit: Callable[[dict[str, Any]], None]) -> None:
        current = await store.load()
        document = current.config.document()
        edit(document["limits"])
        written = await store.write(GatewayConfig.model_validate(document), current.hash)
        await applied_everywhere(nc, written.hash, replicas)

    await rewrite(change)
    try:
        yield rewrite
    finally:
        current = await store.load()
        restored = await store.write(original.config, current.hash)
        await applied_everywhere(nc, restored.hash, replicas)


async def upgrade(env: WsStack, replica: str, ip: str) -> int:
    """101 when the upgrade went through, else the refusal's HTTP status (a 429 must say
    when to retry)."""
    headers = {**env.edge, "X-Forwarded-For": ip}
    try:
        async with websockets.connect(replica, additional_headers=headers, open_timeout=10):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        if exc.response.status_code == 429:
            assert int(exc.response.headers["Retry-After"]) >= 1
        return exc.response.status_code


async def asks_for(nc: nats.NATS, sub: Subscription, ip: str) -> int:
    """How many `ratelimit.edge` requests about `ip` were published so far. Each is
    published before the 101 or 429 that answers it, and the server delivers it to this
    connection before the answer to a later flush: after `flush` they are all queued."""
    await nc.flush()
    count = 0
    try:
        while True:
            msg = await sub.next_msg(timeout=0.05)
            if codec.loads(msg.data).get("clientIp") == ip:
                count += 1
    except nats.errors.TimeoutError:
        return count


async def cached(replica: str) -> float:
    parts = urlsplit(replica)
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        return total((await http.get(f"http://{parts.netloc}/metrics")).text, CACHED)


async def test_an_exempt_address_is_asked_once_and_counted_again_after_a_change(
    env: WsStack, stack: Any
) -> None:
    ip = random_ip()
    replica = env.replicas[0]
    nc = await env.nats()
    try:
        watched = await nc.subscribe("aisopod.ratelimit.edge")

        def exempt_ip(limits: dict[str, Any]) -> None:
            limits["exemptCidrs"] = [*limits.get("exemptCidrs", []), f"{ip}/32"]

        async with live_limits(stack, nc, exempt_ip) as rewrite:
            before = await cached(replica)
            await asks_for(nc, watched, ip)  # nothing about this address yet; drains
            statuses = [await upgrade(env, replica, ip) for _ in range(5)]
            assert statuses == [101] * 5
            assert await asks_for(nc, watched, ip) == 1
            assert await cached(replica) - before == 4

            def count_it(limits: dict[str, Any]) -> None:
                limits["exemptCidrs"] = [c for c in limits["exemptCidrs"] if c != f"{ip}/32"]
                kept = [r for r in limits["rules"] if r["name"] != "ws_connect"]
                limits["rules"] = [*kept, {"name": "ws_connect", "limit": 3, "windowS": 60}]

            await rewrite(count_it)
            statuses = [await upgrade(env, replica, ip) for _ in range(4)]
            assert statuses == [101, 101, 101, 429]
            assert await asks_for(nc, watched, ip) == 4  # every one counted by ratelimit
            assert await cached(replica) - before == 4
    finally:
        await nc.close()


async def test_a_revoke_reaches_a_connect_whose_upgrade_nobody_was_asked_about(
    env: WsStack, stack: Any, admin: Admin
) -> None:
    ip = random_ip()
    replica = env.replicas[0]
    await learn_generation(env, replica)
    created = await admin.request("token.create", {"scopes": READ, "name": "ws-exempt-cache"})
    token = remember(created["token"])
    nc = await env.nats()
    try:

        def exempt_ip(limits: dict[str, Any]) -> None:
            limits["exemptCidrs"] = [*limits.get("exemptCidrs", []), f"{ip}/32"]

        async with live_limits(stack, nc, exempt_ip):
            await connected_once(env, replica, ip=ip, token=token, scopes=READ)
            before = (await cached(replica), (await counters(replica))[HITS])
            await connected_once(env, replica, ip=ip, token=token, scopes=READ)
            after = (await cached(replica), (await counters(replica))[HITS])
            # Neither ratelimit nor auth was asked: the upgrade and the token both kept.
            assert after == (before[0] + 1, before[1] + 1)

            await admin.request("token.revoke", {"tokenId": created["tokenId"]})
            error = await refused(env, replica, ip=ip, token=token, scopes=READ)
            assert error.detail == "AUTH_TOKEN_MISMATCH"
            assert await cached(replica) == after[0] + 1  # that upgrade was not asked either
    finally:
        await nc.close()
