"""The model provider misbehaving, several runs at once through the real WebSocket
surface: down (connection refused), failing (5xx, retried; 401), slow (no first byte
before the run's timeout), slow mid-stream, cutting a stream, dropping the connection.

Each run ends cleanly: `agent.wait` returns its end (error or timeout; never a hang) and
its last `chat.event` is `error` with a message. Afterwards nothing is left behind: the
fake upstream has no response in progress (the runtime closed what it abandoned) and each
runtime's asyncio task count (`aisopod_asyncio_tasks` on its /metrics) is back where it
was. (Retry counts and single-fault details: test_runtime_chat.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.discovery import scatter
from aisopod_ops.launcher.ports import free_port
from tests.support.ws_client import WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SLOW_MS = 1500  # the run timeout of the slow cases; the others get the default
# (model, message, run timeoutMs, how the run ends); each runs twice, all at once.
FAULTS = [
    ("fake/fake-small", "[[fake:status=500]]", None, "error"),  # retried, then error
    ("fake/fake-small", "[[fake:status=401]]", None, "error"),
    ("fake/fake-small", "one two three [[fake:cut_after=3]]", None, "error"),
    ("fake/fake-small", "[[fake:drop]]", None, "error"),
    ("fake/fake-small", "slow [[fake:delay_ms=5000]]", SLOW_MS, "timeout"),
    ("fake/fake-small", "slow stream [[fake:words=300 chunk_delay_ms=30]]", SLOW_MS, "timeout"),
    ("down/gone", "nobody answers", None, "error"),
]
TASKS = re.compile(rb"^aisopod_asyncio_tasks\s+([0-9.e+]+)", re.M)


def metrics_urls(stack: Any) -> list[str]:
    """Each runtime's own /metrics (internal: not routed by Traefik)."""
    urls = []
    for pid in stack.pids.get("runtime", []):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        port = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"AISOPOD_PORT="))
        urls.append(f"http://127.0.0.1:{int(port)}/metrics")
    return urls


async def task_counts(urls: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        bodies = [(await client.get(url)).content for url in urls]
    counts = []
    for body in bodies:
        match = TASKS.search(body)
        assert match, "no aisopod_asyncio_tasks gauge on /metrics"
        counts.append(int(float(match.group(1))))
    return counts


async def warm_every_runtime(env: WsStack, runtimes: int) -> None:
    """A run on every runtime first: a runtime's first run starts long-lived parts once
    (nats-py's async-publish ack handler: +1 task, stable after), which are no leak. The
    test alone on a fresh stack would otherwise count them."""
    nc = await env.nats()
    try:
        runs = await nc.jetstream().key_value("runs")
        instances: set[str] = set()
        deadline = time.monotonic() + 60
        async with await WsClient.connect(env.url, token=env.token) as ws:
            while len(instances) < runtimes:
                assert time.monotonic() < deadline, f"runs reached only {instances}"
                key = f"warm-{uuid.uuid4().hex[:8]}"
                sent = await ws.call("chat.send", {"sessionKey": key, "message": "warm"})
                await ws.call("agent.wait", {"runId": sent["runId"], "timeoutMs": 10_000})
                record = await runs.get(f"run.{sent['runId']}")
                instances.add(orjson.loads(record.value or b"{}").get("instance", ""))
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def provider_down(env: WsStack) -> AsyncIterator[None]:
    """A provider `down` whose base URL has nobody listening; restored afterwards. Written
    to KV `config` directly (not config.apply: its per-principal write limit is shared with
    other suites), then waited for until every runtime runs it."""
    nc = await env.nats()
    store = ConfigStore(await nc.jetstream().key_value("config"))
    before = await store.load()
    document = before.config.document()
    document["models"]["providers"] = [
        *document["models"]["providers"],
        {
            "id": "down",
            "kind": "openai",
            "baseUrl": f"http://127.0.0.1:{free_port()}/v1",
            "apiKey": "sk-nobody",
            "models": [{"id": "gone"}],
            "timeoutS": 5,
            "maxRetries": 1,
        },
    ]
    changed = await store.write(GatewayConfig.model_validate(document), before.hash)
    try:
        await runtimes_run(env, changed.hash)
        yield
    finally:
        current = await store.load()
        restored = await store.write(before.config, current.hash)
        await runtimes_run(env, restored.hash)
        await nc.close()


async def runtimes_run(env: WsStack, config_hash: str) -> None:
    from aisopod.bus import Bus
    from aisopod.settings import ServiceSettings

    bus = await Bus.connect(
        ServiceSettings(
            service="tests",
            nats_url=env.nats_url,
            nats_user="admin",
            nats_password=env.nats_password,
        )
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            reports = await scatter(bus, "aisopod.control.config.report", b"{}")
            hashes = [r.get("hash") for r in reports if r.get("service") == "runtime"]
            if hashes and all(h == config_hash for h in hashes):
                return
            assert time.monotonic() < deadline, f"runtimes did not apply {config_hash}: {hashes}"
            await asyncio.sleep(0.2)
    finally:
        await bus.close()


async def test_provider_faults_end_cleanly_and_leave_nothing_behind(stack, fake_upstream) -> None:
    env = await require_ws_stack(stack)
    urls = metrics_urls(stack)
    assert urls, "no runtime pids to read /metrics from"
    await warm_every_runtime(env, len(urls))
    baseline = [max(c) for c in zip(*[await task_counts(urls) for _ in range(3)], strict=True)]
    marker = uuid.uuid4().hex[:8]
    # One agent per run: its model is the fault's (sessions are created by their first
    # message, so a per-session model cannot be set beforehand).
    runs = [(f"agent:upfault-{marker}-{n}:s", *fault) for n, fault in enumerate(FAULTS * 2)]
    keys = [key for key, *_ in runs]
    async with (
        provider_down(env),
        await WsClient.connect(env.url, token=env.token) as ws,
        await WsClient.connect(
            env.url,
            token=env.token,
            scopes=["operator.read"],
            subscribe=["chat.event"],
        ) as watcher,
    ):
        await watcher.call("subscribe", {"events": [], "sessionKeys": keys})
        for key, model, *_ in runs:
            agent_id = key.split(":")[1]
            await ws.call("agents.create", {"id": agent_id, "name": agent_id, "model": model})
        started = await asyncio.gather(
            *(
                ws.call(
                    "chat.send",
                    {"sessionKey": key, "message": f"{marker} {text}"}
                    | ({"timeoutMs": timeout_ms} if timeout_ms else {}),
                )
                for key, _, text, timeout_ms, _ in runs
            )
        )
        ended = await asyncio.gather(
            *(
                ws.call("agent.wait", {"runId": s["runId"], "timeoutMs": 30_000}, timeout=40)
                for s in started
            )
        )
        for (_, model, text, _, status), end in zip(runs, ended, strict=True):
            assert end["status"] == status and end.get("error"), (model, text, end)
        finals: dict[str, dict[str, Any]] = {}
        while len(finals) < len(runs):
            event = await watcher.next_event("chat.event", timeout=20)
            payload = event["params"]["payload"]
            if payload["state"] in ("final", "error", "aborted"):
                finals[payload["runId"]] = payload
        for s, (_, model, text, *_) in zip(started, runs, strict=True):
            last = finals[s["runId"]]
            assert last["state"] == "error" and last.get("errorMessage"), (model, text, last)

    deadline = time.monotonic() + 30
    while True:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            stats = (await client.get(f"{fake_upstream.root_url}/_stats")).json()
        counts = await task_counts(urls)
        if stats["active_responses"] == 0 and all(
            now <= before for now, before in zip(counts, baseline, strict=True)
        ):
            break
        assert time.monotonic() < deadline, (
            f"left behind: upstream {stats}, runtime tasks {counts} (before: {baseline})"
        )
        await asyncio.sleep(0.2)
