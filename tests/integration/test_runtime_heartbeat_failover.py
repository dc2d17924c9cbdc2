"""Two runtime replicas fire a heartbeat every 2 s; one is killed (-9) between two slots.
Each slot fires exactly once throughout — before, across and after the kill — and each
fired slot is exactly one agent turn.

A private stack: the kill must not disturb the shared one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from aisopod import codec
from aisopod.compat.natspy import flush_in_order
from aisopod.errors import Unavailable
from tests.conftest import seed_config, start_local_stack, stop_local_stack
from tests.integration.runtime_support import RuntimeClient

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

EVERY_MS = 2000
SLOTS_EACH_SIDE = 3


async def job_record(client: RuntimeClient) -> dict[str, Any]:
    kv = await client.bus.js.key_value("heartbeat")
    return dict(codec.loads((await kv.get("job.hb-main")).value))


async def fired_slots(client: RuntimeClient) -> list[dict[str, Any]]:
    kv = await client.bus.js.key_value("heartbeat")
    return list(codec.loads((await kv.get("runs.hb-main")).value)["runs"])


async def call_retrying(client: RuntimeClient, method: str, params: dict[str, Any]) -> Any:
    """A request NATS routed to the killed process just before it noticed gets no answer:
    ask again (both calls here may be repeated)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await client.call(method, params, timeout=5)
        except Unavailable:
            assert time.monotonic() < deadline, f"{method} never answered"


async def wait_for(events: list[dict[str, Any]], count: int, after_ms: int) -> None:
    deadline = time.monotonic() + 60
    while sum(e["dueAtMs"] > after_ms for e in events) < count:
        assert time.monotonic() < deadline, f"fewer than {count} heartbeats after {after_ms}"
        await asyncio.sleep(0.1)


async def between_slots(client: RuntimeClient) -> None:
    """Until no replica holds the job (the last slot's turn is over) and the next slot is
    far enough away for a kill to land before it."""
    deadline = time.monotonic() + 30
    while True:
        job = await job_record(client)
        if job.get("lease") is None and job["nextRunAtMs"] - time.time() * 1000 > 800:
            return
        assert time.monotonic() < deadline, "never between two slots"
        await asyncio.sleep(0.05)


async def test_heartbeat_fires_once_per_slot_across_a_replica_kill(
    tmp_path: Path, fake_upstream
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    prompt = f"pulse {uuid.uuid4().hex}"
    seed = tmp_path / "seed.yaml"
    document = seed_config(fake_upstream.base_url)
    document["heartbeat"] = {"agents": {"main": {"every": "2s", "prompt": prompt}}}
    seed.write_text(json.dumps(document))
    proc, info = start_local_stack(state, "--config", str(seed), "--scale", "runtime=2")
    client = None
    try:
        password = (state / "secrets" / "nats-admin.password").read_text().strip()
        client = await RuntimeClient.connect(info["nats_url"], password)
        events: list[dict[str, Any]] = []

        async def record(msg: Any) -> None:
            events.append(codec.loads(msg.data))

        await client.bus.nc.subscribe(client.bus.subjects.evt("heartbeat"), cb=record)
        await flush_in_order(client.bus.nc, 5)

        await wait_for(events, SLOTS_EACH_SIDE, 0)
        await between_slots(client)
        killed_at = int(time.time() * 1000)
        os.kill(info["pids"]["runtime"][0], signal.SIGKILL)
        await wait_for(events, SLOTS_EACH_SIDE, killed_at)

        # Switch heartbeats off and let the last turn end: then runs and transcript agree.
        await call_retrying(client, "set-heartbeats", {"enabled": False})
        await between_slots(client)
        runs = await fired_slots(client)
        job = await job_record(client)
        history = await call_retrying(client, "chat.history", {"sessionKey": "agent:main:main"})
    finally:
        if client is not None:
            await client.close()
        stop_local_stack(proc)

    slots = [r["dueAtMs"] for r in runs]
    assert len(slots) == len(set(slots)), sorted(slots)  # no slot fired twice
    assert all((s - job["anchorMs"]) % EVERY_MS == 0 for s in slots)
    assert sum(s > killed_at for s in slots) >= SLOTS_EACH_SIDE  # the survivor went on
    assert sum(s < killed_at for s in slots) >= SLOTS_EACH_SIDE
    event_slots = [e["dueAtMs"] for e in events]
    assert len(event_slots) == len(set(event_slots)) and set(event_slots) <= set(slots)
    after = [e for e in events if e["dueAtMs"] > killed_at]
    assert {e["status"] for e in after} == {"sent"}
    # Each fired slot was one agent turn asking the prompt, never two.
    asked = [m for m in history["messages"] if m["role"] == "user" and m["content"] == prompt]
    turn_runs = [m["runId"] for m in asked]
    assert len(turn_runs) == len(set(turn_runs))
    assert {r["agentRunId"] for r in runs if r["status"] == "ok"} <= set(turn_runs)
    assert len(asked) == sum(r.get("agentRunId") is not None for r in runs)
    assert {r["status"] for r in runs if r["dueAtMs"] > killed_at} <= {"ok", "skipped"}
