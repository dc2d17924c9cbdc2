"""Two runtime replicas, one killed (-9) in the middle of a streaming run: the run ends
`error` through its lease, `agent.wait` returns, and the session works again at once.

A private stack: the kill must not disturb the shared one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from aisopod import codec
from aisopod.errors import Unavailable
from tests.conftest import seed_config, start_local_stack, stop_local_stack
from tests.integration.runtime_support import RuntimeClient

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


async def wait_through_failover(client: RuntimeClient, run_id: str) -> dict:
    """`agent.wait` as a client does around a crash: a request NATS routed to the dying
    process before it noticed the death gets no reply, so retry (it is read-only)."""
    deadline = asyncio.get_running_loop().time() + 40
    while True:
        try:
            waited = await client.call(
                "agent.wait", {"runId": run_id, "timeoutMs": 5000}, timeout=8
            )
        except Unavailable:
            waited = {"status": "unavailable"}
        if waited["status"] not in ("timeout", "unavailable"):
            return waited
        assert asyncio.get_running_loop().time() < deadline, f"run {run_id} never ended"


async def test_runtime_killed_mid_run(tmp_path: Path, fake_upstream) -> None:
    state = tmp_path / "state"
    state.mkdir()
    seed = tmp_path / "seed.yaml"
    seed.write_text(json.dumps(seed_config(fake_upstream.base_url)))
    proc, info = start_local_stack(state, "--config", str(seed), "--scale", "runtime=2")
    client = None
    try:
        password = (state / "secrets" / "nats-admin.password").read_text().strip()
        client = await RuntimeClient.connect(info["nats_url"], password)
        agent_id = f"failover-{uuid.uuid4().hex[:8]}"
        await client.call(
            "agents.create", {"id": agent_id, "name": agent_id, "model": "fake/fake-small"}
        )
        key = f"agent:{agent_id}:failover"
        send = {
            "sessionKey": key,
            "message": "long [[fake:words=600 chunk_delay_ms=25]]",
            "idempotencyKey": uuid.uuid4().hex,
        }
        started = await client.call("chat.send", send)
        run_id = started["runId"]
        await client.wait_event(
            "chat.event", lambda p: p["runId"] == run_id and p["state"] == "delta"
        )
        runs = await client.bus.js.key_value("runs")
        record = codec.loads((await runs.get(f"run.{run_id}")).value)
        assert record["status"] == "running"
        assert await client.call("chat.send", send) == {"runId": run_id, "status": "started"}
        assert record["pid"] in info["pids"]["runtime"]
        os.kill(record["pid"], signal.SIGKILL)

        waited = await wait_through_failover(client, run_id)
        assert waited["status"] == "error" and "lease" in waited["error"]
        # A retry with the same key reports how the run really ended, not `started`.
        retried = await client.call("chat.send", send)
        assert retried["runId"] == run_id and retried["status"] == "error"
        assert "lease" in retried["error"]
        last = await client.chat_final(run_id, timeout=10)
        assert last["state"] == "error"
        deltas = [p["seq"] for p in client.of_run(run_id) if p["state"] == "delta"]
        assert last["seq"] > max(deltas)  # the reaper's event sorts after the lost ones

        after = await client.send_and_wait(key, "after the crash")
        assert (after["status"], after["sendStatus"]) == ("ok", "started")
        final = await client.chat_final(after["runId"])
        assert final["message"]["content"] == "echo: after the crash"
    finally:
        if client is not None:
            await client.close()
        stop_local_stack(proc)
