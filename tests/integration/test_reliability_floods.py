"""Floods from one IP, through Traefik, with the live (default) limits: a flood of
WebSocket upgrades (to `/ws` or `/openclaw`) is cut at the `ws_connect` rule (exactly: never
more than the limit), a flood of frames on its connections at the per-connection request
rate — while a client from another IP connects and is served throughout, never limited.

Client IPs are simulated with X-Forwarded-For from the loopback peer, which the local
stack's Traefik trusts (as test_ratelimit_http.py does); each test draws fresh addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import pytest
import websockets

from aisopod.config.store import ConfigStore
from tests.support.ws_client import WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

RATE_LIMITED = -32029
EXTRA = 40  # upgrades beyond the limit


def random_ip() -> str:
    """A fresh address of the benchmarking range 198.18.0.0/15."""
    return f"198.{random.randint(18, 19)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def live_config(env: WsStack) -> dict[str, Any]:
    nc = await env.nats()
    try:
        loaded = await ConfigStore(await nc.jetstream().key_value("config")).load()
        return loaded.config.document()
    finally:
        await nc.close()


async def upgrade(url: str, ip: str) -> tuple[int, Any]:
    """101 and the open socket, or the refusal's HTTP status."""
    try:
        ws = await websockets.connect(
            url, additional_headers={"X-Forwarded-For": ip}, open_timeout=20, ping_interval=None
        )
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code, None
    return 101, ws


async def quiet_client(env: WsStack, ip: str, rounds: int) -> list[str]:
    """Connect (full handshake) and call, `rounds` times; the problems it met."""
    problems = []
    for _ in range(rounds):
        try:
            async with await WsClient.connect(
                env.url, token=env.token, headers={"X-Forwarded-For": ip}, timeout=20
            ) as ws:
                await ws.call("health", timeout=20)
                await ws.call("config.get", timeout=20)
        except Exception as exc:
            problems.append(repr(exc))
    return problems


async def test_a_connection_flood_from_one_ip_is_cut_at_the_limit_others_connect(env) -> None:
    document = await live_config(env)
    rule = next(r for r in document["limits"]["rules"] if r["name"] == "ws_connect")
    limit = rule["limit"]
    noisy, quiet = random_ip(), random_ip()
    attempts = limit + EXTRA
    flood = asyncio.gather(*(upgrade(env.url, noisy) for _ in range(attempts)))
    problems = await quiet_client(env, quiet, 5)
    outcomes = await flood
    try:
        statuses = [status for status, _ in outcomes]
        assert set(statuses) <= {101, 429}, statuses
        assert statuses.count(101) == limit  # exact: the limit, never one more
        assert statuses.count(429) == EXTRA
        assert problems == []  # the other IP connected and was served all along
        assert (await upgrade(env.url, noisy))[0] == 429  # still limited
        assert await quiet_client(env, quiet, 1) == []
    finally:
        for _, ws in outcomes:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()


async def test_an_openclaw_connection_flood_is_cut_at_the_ws_connect_limit(stack, env) -> None:
    """`/openclaw` upgrades count under `ws_connect`, in the same window as `/ws` ones."""
    document = await live_config(env)
    rule = next(r for r in document["limits"]["rules"] if r["name"] == "ws_connect")
    limit = rule["limit"]
    noisy, quiet = random_ip(), random_ip()
    attempts = limit + EXTRA
    flood = asyncio.gather(*(upgrade(stack.openclaw_url, noisy) for _ in range(attempts)))
    problems = await quiet_client(env, quiet, 5)
    outcomes = await flood
    try:
        statuses = [status for status, _ in outcomes]
        assert set(statuses) <= {101, 429}, statuses
        assert statuses.count(101) == limit  # the ws_connect limit, not the http rule's
        assert statuses.count(429) == EXTRA
        assert problems == []
        assert (await upgrade(env.url, noisy))[0] == 429  # /ws shares the window
        status, ws = await upgrade(stack.openclaw_url, quiet)
        outcomes.append((status, ws))  # closed below
        assert status == 101
    finally:
        for _, ws in outcomes:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()


async def test_a_frame_flood_is_limited_per_connection_others_are_served(env) -> None:
    gateway = (await live_config(env))["gateway"]
    burst = gateway["requestBurst"]
    noisy, quiet = random_ip(), random_ip()
    flooders = [
        await WsClient.connect(env.url, token=env.token, headers={"X-Forwarded-For": noisy})
        for _ in range(2)
    ]
    try:
        frames = burst * 3  # per flooding connection, sent back to back

        async def flood(ws: WsClient) -> list[dict[str, Any]]:
            return await asyncio.gather(*(ws.request("health", timeout=60) for _ in range(frames)))

        floods = asyncio.gather(*(flood(ws) for ws in flooders))
        problems = await quiet_client(env, quiet, 5)
        replies = [reply for batch in await floods for reply in batch]
        served = [r for r in replies if "result" in r]
        limited = [r for r in replies if r.get("error", {}).get("code") == RATE_LIMITED]
        assert len(served) + len(limited) == len(replies), "only results or RATE_LIMITED"
        assert limited and served
        assert all(r["error"]["data"]["retryAfterMs"] > 0 for r in limited)
        assert problems == []  # the other IP was served, never limited
        for ws in flooders:  # limited, not cut off: served again once it slows down
            assert not ws.closed.done()
            deadline = asyncio.get_running_loop().time() + 10
            while "result" not in await ws.request("health"):
                assert asyncio.get_running_loop().time() < deadline, "never served again"
                await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(*(ws.close() for ws in flooders))
