"""Runtime part 2 on a private stack: whole-stack downtime (missed cron jobs).

The rolling restart of every instance (update.run: order, progress events, every instance
renewed) is tested under chat, RPC and HTTP load in test_reliability_restarts.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aisopod.bus import Bus
from aisopod.errors import AisopodError
from aisopod.principal import Principal
from tests.support.private_stack import RestartableStack

pytestmark = pytest.mark.integration


def admin() -> Principal:
    return Principal(id=f"p2-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


class PrivateStack(RestartableStack):
    """One runtime, two of each edge; can be stopped and started again on the same state."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, "--scale", "runtime=1")


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    state = tmp_path_factory.mktemp("p2private") / "state"
    state.mkdir()
    stack = PrivateStack(state)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


async def call_retrying(bus: Bus, method: str, params: dict, deadline: float) -> Any:
    """The runtime may be restarting: retry UNAVAILABLE until the deadline."""
    while True:
        try:
            return await bus.call(method, params, principal=admin(), timeout=5)
        except AisopodError as exc:
            if exc.name != "UNAVAILABLE" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def test_a_job_missed_while_every_runtime_was_down_fires_once(private) -> None:
    bus = await private.bus()
    try:
        job = await bus.call(
            "cron.add",
            {
                "name": "p2-missed",
                "schedule": {"kind": "every", "everyMs": 3000},
                "payload": {"kind": "systemEvent", "text": "missed?"},
            },
            principal=admin(),
        )
    finally:
        await bus.close()
    private.stop()
    down_since = int(time.time() * 1000)
    # The outage is the scenario: it must span at least two slots, however fast the stack
    # stops and starts again.
    while time.time() * 1000 < down_since + 2 * 3000 + 500:
        await asyncio.sleep(0.1)
    private.start()
    bus = await private.bus()
    try:
        deadline = time.monotonic() + 30

        async def recovered() -> list[dict[str, Any]]:
            while True:
                runs = (await call_retrying(bus, "cron.runs", {"jobId": job["jobId"]}, deadline))[
                    "runs"
                ]
                after = [r for r in runs if r["startedAt"] >= down_since]
                if after and all(r["status"] != "running" for r in after):
                    return runs
                assert time.monotonic() < deadline, "the missed job never fired"
                await asyncio.sleep(0.2)

        runs = await recovered()
        listed = await bus.call("cron.list", {}, principal=admin())
        await bus.call("cron.remove", {"jobId": job["jobId"]}, principal=admin())
    finally:
        await bus.close()
    anchor = job["createdAtMs"]
    last_due_before = max(
        [r["dueAtMs"] for r in runs if r["startedAt"] < down_since], default=anchor
    )
    after = sorted((r for r in runs if r["startedAt"] >= down_since), key=lambda r: r["startedAt"])
    catch_up = after[0]
    assert (catch_up["startedAt"] - last_due_before) // 3000 >= 2, "fewer than 2 slots missed"
    assert catch_up["dueAtMs"] == last_due_before + 3000  # the first missed slot...
    # ...fired once: every later run is for a slot due after the recovery.
    assert all(r["dueAtMs"] > catch_up["startedAt"] for r in after[1:]), runs
    mine = next(j for j in listed["jobs"] if j["jobId"] == job["jobId"])
    assert mine["nextRunAtMs"] > catch_up["startedAt"]
    assert (mine["nextRunAtMs"] - anchor) % 3000 == 0
