"""Restarts under load, on a private stack (2 of each edge, 2 runtimes): a rolling restart
of every service instance (`update.run`), then a NATS restart. Clients behave as real
ones do (reconnect, retry with idempotency keys, resume events by seq); what must hold:
zero failed requests, zero lost events, zero lost transcript messages, and after NATS
comes back every service serves again with everything persisted still there. (A run that
the NATS outage catches half-way may end `error`; it must say so consistently — reply,
stream, transcript — and nothing acknowledged before may be missing.)

Elsewhere in the reliability suite (`pytest -m reliability`):
- `kill -9` of a runtime during a streaming run: test_runtime_failover.py;
- a ws-gateway replica restarted (SIGTERM) under event load, resume by seq:
  test_ws_restart.py; the rollout's order and progress events (health load only):
  test_runtime_private.py;
- a stalled WebSocket client never delays a hundred others (closed as a slow consumer):
  test_ws_protocol.py::test_one_stalled_client_does_not_delay_a_hundred_others;
- floods from one IP: test_reliability_floods.py; upstream faults: test_reliability_upstream.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from aisopod.bus import Bus
from aisopod.discovery import discover
from aisopod.settings import ServiceSettings
from tests.conftest import StackHandle, seed_config, start_local_stack, stop_local_stack
from tests.integration.reliability_support import (
    EventFollower,
    Load,
    ResilientWs,
    Tally,
    stream_events,
)
from tests.support.log_audit import leaks
from tests.support.ws_client import WsClient
from tests.support.ws_stack import edge_secret, replica_urls

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

INSTANCES = 8  # 2 ws-gateway, 2 http-api, 2 runtime, auth, ratelimit
LOAD_BEFORE_S = 2.0  # steady load before the fault: the fault hits a busy stack


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory, fake_upstream) -> Iterator[StackHandle]:
    state = tmp_path_factory.mktemp("reliability") / "state"
    state.mkdir()
    seed = state.parent / "seed.yaml"
    seed.write_text(json.dumps(seed_config(fake_upstream.base_url)))
    proc, info = start_local_stack(state, "--config", str(seed), "--scale", "runtime=2")
    try:
        yield StackHandle(
            **{k: info[k] for k in ("http_url", "https_url", "ws_url", "admin_token", "nats_url")},
            state_dir=state,
            pids=info["pids"],
            launcher_pid=proc.pid,
        )
    finally:
        stop_local_stack(proc)
    assert leaks(state) == []  # this stack's own secrets never reached its logs


@pytest.fixture
async def bus(private_stack: StackHandle) -> AsyncIterator[Bus]:
    settings = ServiceSettings(
        service="tests",
        nats_url=private_stack.nats_url,
        nats_user="admin",
        nats_password=private_stack.nats_password("admin"),
    )
    connected = await Bus.connect(settings)
    yield connected
    await connected.close()


def ws_urls(stack: StackHandle) -> list[str]:
    return [stack.ws_url]  # through Traefik, which routes around a draining replica


async def settle(
    load: Load, follower: EventFollower, bus: Bus, after_seq: int
) -> tuple[list[int], dict[str, str]]:
    """Stop the load, let the follower catch up with the stream; the stream's seqs of the
    load's chat events, and the terminal state the stream holds for each run."""
    await load.stop()
    deadline = time.monotonic() + 30
    while True:
        events = [
            (seq, payload)
            for seq, payload in await stream_events(bus.js, "chat.event", after_seq)
            if payload.get("sessionKey") in load.sessions
        ]
        expected = [seq for seq, _ in events]
        if set(expected) <= set(follower.seqs) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await follower.stop()
    ended = {p["runId"]: p["state"] for _, p in events if p.get("state") in TERMINAL}
    return expected, ended


TERMINAL = {"final": "ok", "error": "error", "aborted": "aborted"}


def assert_nothing_lost(
    load: Load, follower: EventFollower, expected: list[int], ended: dict[str, str]
) -> None:
    """Zero failed requests (after retries); each run's end is in the stream as the state
    `agent.wait` reported; the follower saw every one of the load's events exactly once."""
    assert load.failures == [], load.summary()
    wrong = {
        run: (status, ended.get(run))
        for run, status in load.runs.items()
        if TERMINAL.get(ended.get(run, "")) != status
    }
    assert wrong == {}, f"runs whose end the stream lacks or contradicts: {wrong}"
    assert expected, "the load published no chat.event"
    assert sorted(follower.seqs) == expected, (len(follower.seqs), len(expected))


async def assert_transcripts(stack: StackHandle, load: Load) -> None:
    """Each session holds the turns in order, none twice, nothing unsent; each run that
    ended `ok` has its message and its answer. (A run that failed may have lost its
    message with the outage, or kept a partial answer.)"""
    client = ResilientWs(ws_urls(stack), stack.admin_token, scopes=("operator.read",))
    try:
        for key, turns in load.turns.items():
            history = await client.call("chat.history", {"sessionKey": key, "limit": 1000}, Tally())
            pairs = [(m["role"], m["content"]) for m in history["messages"]]
            users = [c for r, c in pairs if r == "user"]
            assert len(users) == len(set(users)), (key, "a message twice")
            assert set(users) <= {t for t, _, _ in turns}, (key, "a message never sent")
            at = 0
            for text, _, status in turns:
                if status != "ok" and (at >= len(pairs) or pairs[at] != ("user", text)):
                    continue
                assert pairs[at] == ("user", text), (key, text, pairs[at : at + 2])
                at += 1
                if status == "ok":
                    assert pairs[at] == ("assistant", "echo: " + text), (key, pairs[at])
                    at += 1
                elif at < len(pairs) and pairs[at][0] == "assistant":
                    at += 1
            assert at == len(pairs), (key, pairs[at:])
    finally:
        await client.close()


async def start_load(stack: StackHandle, bus: Bus) -> tuple[Load, EventFollower, int]:
    after_seq = (await bus.js.stream_info("EVENTS")).state.last_seq
    load = Load(ws_urls(stack), stack.http_url, stack.admin_token)
    follower = EventFollower(ws_urls(stack), stack.admin_token, load.sessions)
    follower.start()
    await asyncio.wait_for(follower.connected.wait(), 30)
    await load.start()
    return load, follower, after_seq


async def wait_rollout(client: ResilientWs, rollout_id: str, budget_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + budget_s
    while True:
        status = await client.call("update.status", {}, Tally())
        rollout = status["rollout"]
        if rollout and rollout["id"] == rollout_id and rollout["state"] in ("done", "error"):
            return rollout
        assert time.monotonic() < deadline, f"rollout stuck: {rollout}"
        await asyncio.sleep(0.5)


async def test_rolling_restart_of_every_instance_under_load_loses_nothing(
    private_stack: StackHandle, bus: Bus
) -> None:
    before = await discover(bus)
    assert len(before) == INSTANCES
    load, follower, after_seq = await start_load(private_stack, bus)
    admin = ResilientWs(ws_urls(private_stack), private_stack.admin_token)
    try:
        await asyncio.sleep(LOAD_BEFORE_S)
        started = await admin.call("update.run", {}, Tally())
        assert started["total"] == INSTANCES
        rollout = await wait_rollout(admin, started["rolloutId"], 240)
        await asyncio.sleep(LOAD_BEFORE_S)  # and some load on the renewed stack
    finally:
        expected, ended = await settle(load, follower, bus, after_seq)
        await admin.close()
    assert rollout["state"] == "done", rollout
    after = await discover(bus)
    assert sorted(i.key for i in after) == sorted(i.key for i in before)
    assert not {i.micro_id for i in after} & {i.micro_id for i in before}, "not all restarted"
    progress = [
        p
        for _, p in await stream_events(bus.js, "update.progress", after_seq)
        if p["rolloutId"] == started["rolloutId"]
    ]
    phases = [p["phase"] for p in progress]
    assert phases[0] == "started" and phases[-1] == "done", phases
    restarted = [(p["service"], p["instance"]) for p in progress if p["phase"] == "restarted"]
    assert sorted(restarted) == sorted(i.key for i in before)  # one at a time, each once
    order = [service for service, _ in restarted]
    assert order[:2] == ["ratelimit", "auth"] and order[-2:] == ["runtime", "runtime"], order
    assert restarted[-1][1] == rollout["orchestrator"]  # the orchestrator went last

    assert_nothing_lost(load, follower, expected, ended)
    assert load.run_errors == [], load.summary()  # a rolling restart fails no run
    summary = load.summary()
    assert load.chat.calls > 10 and load.rpc.calls > 10 and load.http.calls > 10, summary
    assert len(follower.resumes) > 1, "the follower was never moved: no edge restarted under it"
    await assert_transcripts(private_stack, load)


async def test_nats_restart_mid_load_every_service_recovers_nothing_persisted_lost(
    private_stack: StackHandle, bus: Bus
) -> None:
    marker = uuid.uuid4().hex[:8]
    admin = ResilientWs(ws_urls(private_stack), private_stack.admin_token)
    tally = Tally()
    agent = await admin.call("agents.create", {"id": f"rel-{marker}", "name": "kept"}, tally)
    key = f"agent:main:kept-{marker}"
    kept = await admin.call("chat.send", {"sessionKey": key, "message": f"kept {marker}"}, tally)
    await admin.call("agent.wait", {"runId": kept["runId"], "timeoutMs": 10_000}, tally)
    await admin.call("sessions.patch", {"key": key, "label": f"label-{marker}"}, tally)
    config_before = await admin.call("config.get", {}, tally)

    load, follower, after_seq = await start_load(private_stack, bus)
    nats_pid = private_stack.pids["nats"][0]
    try:
        await asyncio.sleep(LOAD_BEFORE_S)
        os.kill(nats_pid, signal.SIGKILL)  # the launcher starts it again
        await every_instance_back(bus, nats_pid)
        await asyncio.sleep(LOAD_BEFORE_S)  # load on the recovered stack
    finally:
        expected, ended = await settle(load, follower, bus, after_seq)
    try:
        # Runs caught by the outage may end `error` (cleanly: reported and in the stream);
        # what was acknowledged before it must all be there.
        assert_nothing_lost(load, follower, expected, ended)
        await assert_transcripts(private_stack, load)

        agents = await admin.call("agents.list", {}, tally)
        assert agent["id"] in [a["id"] for a in agents["agents"]]
        sessions = await admin.call("sessions.list", {"search": key}, tally)
        assert [s.get("label") for s in sessions["sessions"]] == [f"label-{marker}"]
        history = await admin.call("chat.history", {"sessionKey": key}, tally)
        assert [m["content"] for m in history["messages"]] == [
            f"kept {marker}",
            f"echo: kept {marker}",
        ]
        config_after = await admin.call("config.get", {}, tally)
        assert config_after["hash"] == config_before["hash"]
        await each_replica_delivers_events(private_stack, admin, f"after {marker}")
    finally:
        await admin.call("agents.delete", {"agentId": agent["id"]}, tally)
        await admin.close()


async def each_replica_delivers_events(stack: StackHandle, admin: ResilientWs, text: str) -> None:
    """A new handshake on each ws-gateway replica (auth over NATS), and a chat run's final
    event reaching both (each replica's stream consumer came back)."""
    edge = {"X-Aisopod-Edge": edge_secret(stack)}  # each replica directly, as the edge
    clients = [
        await WsClient.connect(url, token=stack.admin_token, headers=edge, subscribe=["chat.event"])
        for url in replica_urls(stack)
    ]
    try:
        key = f"agent:main:replicas-{uuid.uuid4().hex[:8]}"
        started = await admin.call("chat.send", {"sessionKey": key, "message": text}, Tally())
        for ws in clients:
            await ws.next_event(
                lambda e: (
                    e["params"]["payload"].get("runId") == started["runId"]
                    and e["params"]["payload"].get("state") == "final"
                ),
                timeout=20,
            )
    finally:
        await asyncio.gather(*(ws.close() for ws in clients))


async def every_instance_back(bus: Bus, old_pid: int) -> None:
    """NATS answers again (a new process) and every service instance is registered."""
    deadline = time.monotonic() + 60
    while True:
        try:
            alive = await discover(bus) if bus.nc.is_connected else []
        except Exception:
            alive = []
        if len(alive) == INSTANCES and not _alive(old_pid):
            return
        assert time.monotonic() < deadline, f"after the NATS restart: {len(alive)} instances"
        await asyncio.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
