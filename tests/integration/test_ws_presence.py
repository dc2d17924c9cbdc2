"""Presence across ws-gateway replicas (real stack, each replica reached on its own port):
an operator's entry reaches KV `presence` only once its connection has outlived the grace
(`gateway.presenceGraceMs`), a node's at once; the replica holding a connection lists it
from its hello on (docs/ws-gateway.md, Presence)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.ws_client import WsClient, node_client
from tests.support.ws_stack import WsStack, live_gateway_config, require_ws_stack

pytestmark = pytest.mark.integration

# Long enough that a client closing right after its hello is always within it.
SHORT_LIVED_GRACE_MS = 5_000
# Longer than any wait below: what shows up meanwhile was not deferred by the grace.
NODE_TEST_GRACE_MS = 30_000
WAIT_S = 20.0


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


class BucketWatch:
    """Every update of KV `presence` (key, PUT or DEL) from the moment it starts."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str]] = []

    def ops(self, key: str) -> list[str]:
        return [op for k, op in self.updates if k == key]

    async def collect(self, watcher: Any) -> None:
        # Iterated until `watcher.stop()`, not cancelled: before Python 3.12 a cancel can be
        # lost in `updates()`'s `wait_for` when an update arrives at the same moment.
        async for entry in watcher:
            if entry is not None:  # None: the end of the initial values
                self.updates.append((entry.key, entry.operation or "PUT"))


@contextlib.asynccontextmanager
async def watching_presence(env: WsStack) -> AsyncIterator[BucketWatch]:
    nc = await env.nats()
    kv = await nc.jetstream().key_value("presence")
    watcher = await kv.watchall()
    watch = BucketWatch()
    task = asyncio.create_task(watch.collect(watcher))
    try:
        yield watch
    finally:
        await watcher.stop()
        await task
        await nc.close()


async def poll(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """The first truthy value of `check()`, polled until `WAIT_S`."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"not reached in time: {what}"
        await asyncio.sleep(0.05)


def conn_id(ws: WsClient) -> str:
    return str(ws.hello["server"]["connId"])


async def listed_by(ws: WsClient, wanted: str) -> bool:
    return any(p["connId"] == wanted for p in await ws.call("system-presence"))


async def test_a_connection_closed_within_the_grace_never_reaches_kv(env) -> None:
    replica = env.replicas[0]
    async with (
        live_gateway_config(env, presenceGraceMs=SHORT_LIVED_GRACE_MS),
        watching_presence(env) as watch,
    ):
        brief = await WsClient.connect(replica, token=env.token, headers=env.edge)
        brief_id = conn_id(brief)
        # Its own replica lists it at once: in its answers and in a later hello.
        assert await listed_by(brief, brief_id)
        async with await WsClient.connect(replica, token=env.token, headers=env.edge) as later:
            assert any(p["connId"] == brief_id for p in later.hello["snapshot"]["presence"])
            await brief.close()
            # `later` was opened after `brief` on the same replica: its grace ends after
            # the one `brief` had, so once its entry is written, `brief`'s would have been.
            later_id = conn_id(later)
            await poll(lambda: _true("PUT" in watch.ops(later_id)), "the kept entry in KV")
            assert watch.ops(brief_id) == []  # no put, and no delete either
            assert not await listed_by(later, brief_id)
        await poll(lambda: _true("DEL" in watch.ops(later_id)), "the kept entry deleted")


async def test_a_connection_kept_open_is_in_kv_and_listed_by_the_other_replica(env) -> None:
    async with (
        watching_presence(env) as watch,
        await WsClient.connect(env.replicas[1], token=env.token, headers=env.edge) as other,
    ):
        async with await WsClient.connect(
            env.replicas[0], token=env.token, headers=env.edge
        ) as kept:
            kept_id = conn_id(kept)
            assert kept.hello["server"]["instance"] != other.hello["server"]["instance"]
            await poll(lambda: _true("PUT" in watch.ops(kept_id)), "the entry in KV")
            await poll(lambda: listed_by(other, kept_id), "listed by the other replica")
        await poll(lambda: _true("DEL" in watch.ops(kept_id)), "the entry deleted")
        await poll(lambda: _not(listed_by(other, kept_id)), "gone from the other replica")


async def test_a_node_is_written_at_once_and_listed_by_the_other_replica(env) -> None:
    node_id = "itest-presence-" + uuid.uuid4().hex[:8]
    async with (
        live_gateway_config(env, presenceGraceMs=NODE_TEST_GRACE_MS),
        watching_presence(env) as watch,
        await WsClient.connect(env.replicas[0], token=env.token, headers=env.edge) as operator,
    ):
        async with await WsClient.connect(
            env.replicas[1],
            headers=env.edge,
            token=env.token,
            role="node",
            scopes=[],
            client=node_client(node_id),
            commands=["echo"],
        ) as node:
            node_conn = conn_id(node)
            await poll(lambda: _true("PUT" in watch.ops(node_conn)), "the node's entry in KV")

            async def connected() -> bool:
                nodes = (await operator.call("node.list"))["nodes"]
                return any(n["nodeId"] == node_id and n["connected"] for n in nodes)

            await poll(connected, "the node listed as connected by the other replica")
        await poll(lambda: _true("DEL" in watch.ops(node_conn)), "the node's entry deleted")


async def _true(value: bool) -> bool:
    return value


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
