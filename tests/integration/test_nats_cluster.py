"""A 3-node NATS cluster under load loses no request when a node is killed (-9).

A private stack (`--nats-cluster 3`, every stream and bucket R3, two ws-gateways): one
WebSocket client per ws-gateway replica sends `chat.send` turn after turn, one HTTP client
streams `/v1/chat/completions` with the official SDK; neither retries anything. We kill
the JetStream meta leader, wait for the launcher to bring it back current, then kill the
leader of TRANSCRIPTS. What must hold: zero failed requests (a stall is fine), every
acknowledged message in `chat.history`, the configuration unchanged, every killed node
current again within 30 s. Once with one runtime, once with two; a cron job due every
second runs throughout and fires once per slot, never twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import openai
import pytest
from nats.aio.client import Client

from aisopod.settings import nats_servers
from tests.conftest import StackHandle, seed_config, start_local_stack, stop_local_stack
from tests.support.ws_client import WsClient
from tests.support.ws_stack import edge_secret, replica_urls

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

REJOIN_S = 30.0
LOAD_S = 2.0  # traffic before and after each kill
CRON_EVERY_MS = 1000


@dataclass
class ClusterStack:
    handle: StackHandle
    monitor_urls: list[str]
    ready_file: Path

    def nats_pids(self) -> list[int]:
        """The nodes' current pids (the launcher rewrites the record on a restart)."""
        return list(json.loads(self.ready_file.read_text())["pids"]["nats"])


@pytest.fixture(scope="module", params=[1, 2], ids=["1-runtime", "2-runtimes"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream
) -> Iterator[ClusterStack]:
    state = tmp_path_factory.mktemp("cluster") / "state"
    state.mkdir()
    seed = state.parent / "seed.yaml"
    seed.write_text(json.dumps(seed_config(fake_upstream.base_url)))
    proc, info = start_local_stack(
        state,
        "--config",
        str(seed),
        "--nats-cluster",
        "3",
        "--replicas",
        "2",
        "--runtime-replicas",
        str(request.param),
        "--nats-monitor",  # the meta leader and node health are read from /jsz, /healthz
        timeout=150,
    )
    try:
        handle = StackHandle(
            **{k: info[k] for k in StackHandle.__dataclass_fields__ if k in info}
            | {"state_dir": Path(info["state_dir"]), "launcher_pid": proc.pid}
        )
        yield ClusterStack(handle, info["nats_monitor_urls"], state / "ready.json")
    finally:
        stop_local_stack(proc)


@pytest.fixture
async def admin_nats(cluster: ClusterStack) -> AsyncIterator[Client]:
    nc = await nats.connect(
        nats_servers(cluster.handle.nats_url),
        user="admin",
        password=cluster.handle.nats_password("admin"),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
    )
    yield nc
    await nc.close()


@dataclass
class Traffic:
    """Requests that are never retried: any error is a failure."""

    acked: dict[str, list[str]] = field(default_factory=dict)  # session → messages
    failures: list[str] = field(default_factory=list)
    completions: int = 0
    longest_s: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def took(self, started: float) -> None:
        self.longest_s = max(self.longest_s, time.monotonic() - started)

    def fail(self, what: str, started: float) -> None:
        """Record a failure with when it started (wall clock, to match the stack's logs)
        and how long it took: a stall that timed out reads differently from a refusal."""
        elapsed = time.monotonic() - started
        self.failures.append(f"{what} (sent {clock(-elapsed)}, failed after {elapsed:.2f} s)")


def clock(offset_s: float = 0.0) -> str:
    """Wall-clock time of day with milliseconds, as the stack's logs stamp it."""
    return (datetime.now() + timedelta(seconds=offset_s)).strftime("%H:%M:%S.%f")[:-3]


async def chat_turns(url: str, token: str, edge: dict[str, str], traffic: Traffic) -> None:
    """Back-to-back `chat.send` on one ws-gateway replica, reached directly (as the edge:
    with its proof)."""
    session = f"agent:main:cluster-{uuid.uuid4().hex[:8]}"
    traffic.acked[session] = []
    async with await WsClient.connect(url, token=token, headers=edge, timeout=10) as ws:
        for n in itertools.count():
            if traffic.stop.is_set():
                return
            text = f"{session} turn {n}"
            params = {"sessionKey": session, "message": text, "idempotencyKey": f"{session}-{n}"}
            started = time.monotonic()
            try:
                sent = await ws.call("chat.send", params, timeout=30)
                traffic.acked[session].append(text)
                done = {"status": "timeout"}
                while done["status"] == "timeout":  # the run outlived one wait: wait again
                    done = await ws.call(
                        "agent.wait", {"runId": sent["runId"], "timeoutMs": 10_000}, timeout=30
                    )
                if done["status"] != "ok":
                    traffic.fail(f"{text}: run ended {done}", started)
            except Exception as exc:
                traffic.fail(f"{text}: {exc!r}", started)
            traffic.took(started)


async def completions(http_url: str, token: str, traffic: Traffic) -> None:
    client = openai.AsyncOpenAI(
        base_url=f"{http_url}/v1",
        api_key=token,
        max_retries=0,
        timeout=30,
        http_client=httpx.AsyncClient(trust_env=False),
    )
    async with client:
        for n in itertools.count():
            if traffic.stop.is_set():
                return
            started = time.monotonic()
            try:
                stream = await client.chat.completions.create(
                    model="aisopod/main",
                    messages=[{"role": "user", "content": f"completion {n}"}],
                    stream=True,
                )
                parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
                text = "".join(parts)
                if f"completion {n}" not in text:
                    traffic.fail(f"completion {n}: answered {text!r}", started)
                traffic.completions += 1
            except Exception as exc:
                traffic.fail(f"completion {n}: {exc!r}", started)
            traffic.took(started)


async def stream_info(nc: Client, stream: str) -> dict[str, Any]:
    reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
    return dict(json.loads(reply.data))


async def meta_leader(cluster: ClusterStack) -> str:
    """The JetStream meta leader's server name, as any node's monitoring reports it."""
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        for url in cluster.monitor_urls:
            try:
                jsz = (await client.get(f"{url}/jsz")).json()
            except httpx.HTTPError:
                continue
            leader = (jsz.get("meta_cluster") or {}).get("leader")
            if leader:
                return str(leader)
    raise AssertionError("no node reports a meta leader")


async def kill_node(cluster: ClusterStack, server_name: str) -> int:
    """SIGKILL the node named `server_name` (aisopod-local-N); returns its index."""
    index = int(server_name.rsplit("-", 1)[1]) - 1
    os.kill(cluster.nats_pids()[index], signal.SIGKILL)
    return index


async def wait_current(cluster: ClusterStack, nc: Client, index: int, killed_pid: int) -> float:
    """Seconds until the node is back (a new pid, /healthz ok) and every replica of the
    streams we care about is current again."""
    started = time.monotonic()
    deadline = started + REJOIN_S
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if cluster.nats_pids()[index] != killed_pid:
                try:
                    health = await client.get(f"{cluster.monitor_urls[index]}/healthz")
                except httpx.HTTPError:
                    health = None
                if health is not None and health.status_code == 200 and await all_current(nc):
                    return time.monotonic() - started
            await asyncio.sleep(0.2)
    raise AssertionError(f"node {index + 1} not current within {REJOIN_S:.0f} s")


async def all_current(nc: Client) -> bool:
    for stream in ("TRANSCRIPTS", "EVENTS", "KV_config", "KV_dedupe", "KV_runs"):
        try:
            info = await stream_info(nc, stream)
        except Exception:
            return False
        cluster = info.get("cluster") or {}
        replicas = cluster.get("replicas") or []
        if not cluster.get("leader") or len(replicas) != 2:
            return False
        if not all(r.get("current") for r in replicas):
            return False
    return True


async def config_hash(url: str, token: str) -> str:
    async with await WsClient.connect(url, token=token, timeout=10) as ws:
        return str((await ws.call("config.get", {}))["hash"])


async def test_killing_a_nats_node_loses_no_request(
    cluster: ClusterStack, admin_nats: Client
) -> None:
    handle = cluster.handle
    token = handle.admin_token
    urls = replica_urls(handle)
    edge = {"X-Aisopod-Edge": edge_secret(handle)}
    assert len(urls) == 2 and len(cluster.monitor_urls) == 3
    assert len(nats_servers(handle.nats_url)) == 3 and len(cluster.nats_pids()) == 3
    transcripts = await stream_info(admin_nats, "TRANSCRIPTS")
    assert transcripts["config"]["num_replicas"] == 3
    config = await stream_info(admin_nats, "KV_config")
    assert config["config"]["num_replicas"] == 3
    before = await config_hash(handle.ws_url, token)
    async with await WsClient.connect(handle.ws_url, token=token, timeout=10) as ws:
        job = await ws.call(
            "cron.add",
            {
                "name": f"cluster-{uuid.uuid4().hex[:6]}",
                "schedule": {"kind": "every", "everyMs": CRON_EVERY_MS},
                "payload": {"kind": "systemEvent", "text": "tick"},
            },
        )

    traffic = Traffic()
    load = [
        *(asyncio.create_task(chat_turns(url, token, edge, traffic)) for url in urls),
        asyncio.create_task(completions(handle.http_url, token, traffic)),
    ]
    rejoin: dict[str, float] = {}
    kills: list[str] = []
    try:
        await asyncio.sleep(LOAD_S)  # a busy stack when the node dies
        for target in ("meta", "TRANSCRIPTS"):
            if target == "meta":
                leader = await meta_leader(cluster)
            else:
                leader = str((await stream_info(admin_nats, target))["cluster"]["leader"])
            pid_before = cluster.nats_pids()[int(leader.rsplit("-", 1)[1]) - 1]
            index = await kill_node(cluster, leader)
            kills.append(f"{target} leader {leader} killed at {clock()}")
            rejoin[target] = await wait_current(cluster, admin_nats, index, pid_before)
            await asyncio.sleep(LOAD_S)  # traffic after the node is back
    finally:
        traffic.stop.set()
        await asyncio.gather(*load)

    assert traffic.failures == [], "\n".join(kills + traffic.failures)
    assert traffic.completions > 0
    assert all(len(sent) > 2 for sent in traffic.acked.values()), traffic.acked
    async with await WsClient.connect(handle.ws_url, token=token, timeout=10) as ws:
        for session, sent in traffic.acked.items():
            history = await ws.call("chat.history", {"sessionKey": session, "limit": 1000})
            said = [m["content"] for m in history["messages"] if m["role"] == "user"]
            missing = [text for text in sent if text not in said]
            assert missing == [], (session, missing)
    assert await config_hash(handle.ws_url, token) == before
    async with await WsClient.connect(handle.ws_url, token=token, timeout=10) as ws:
        runs = (await ws.call("cron.runs", {"jobId": job["jobId"], "limit": 500}))["runs"]
        await ws.call("cron.remove", {"jobId": job["jobId"]})
    slots = [r["dueAtMs"] for r in runs]
    # Across both kills (and both runtimes' schedulers): each slot fired once, none twice.
    assert len(slots) > 3 and len(slots) == len(set(slots)), sorted(slots)
    assert all((slot - job["createdAtMs"]) % CRON_EVERY_MS == 0 for slot in slots)
    print(f"rejoin {rejoin}; longest request {traffic.longest_s:.2f}s")
