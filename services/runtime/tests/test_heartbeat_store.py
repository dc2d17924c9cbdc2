"""The system-event inbox and the heartbeat job reconciliation against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from aisopod.catalogue.cron import EverySchedule
from aisopod.config.sections.heartbeat import HeartbeatSection
from aisopod.errors import Conflict
from aisopod_runtime.cron.store import CronStore
from aisopod_runtime.heartbeat.inbox import MAX_EVENTS, SystemEventInbox
from aisopod_runtime.heartbeat.jobs import reconcile

T0 = 1_800_000_000_000
KEY = "agent:main:main"


@pytest.fixture
async def kv(nats_url: str) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_url)
    yield await nc.jetstream().create_key_value(
        config=KeyValueConfig(bucket=f"hb_{uuid.uuid4().hex[:8]}")
    )
    await nc.close()


class Transcript:
    """Collects what `deliver` appends, as the transcript store would."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def append(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def test_events_are_delivered_once_in_order(kv: KeyValue) -> None:
    inbox = SystemEventInbox(kv)
    transcript = Transcript()
    assert await inbox.deliver(KEY, transcript.append, "run-0") is None  # nothing waits
    assert await inbox.push(KEY, "first", "hook:wake", T0) == 1
    assert await inbox.push(KEY, "second", "tester", T0 + 1000) == 2
    assert await inbox.waiting("agent:main:other") == 0
    message = await inbox.deliver(KEY, transcript.append, "run-1")
    assert message is not None and transcript.messages == [message]
    assert message["role"] == "system" and message["label"] == "system-event"
    assert message["runId"] == "run-1"
    lines = message["content"].splitlines()
    assert "(hook:wake) first" in lines[1] and "(tester) second" in lines[2]
    assert "2027-01-15 08:00:00 UTC" in lines[1]
    assert await inbox.waiting(KEY) == 0
    assert await inbox.deliver(KEY, transcript.append, "run-2") is None
    assert await inbox.push(KEY, "after", "tester", T0) == 1  # the key is usable again


async def test_an_event_queued_during_delivery_stays_for_the_next_turn(kv: KeyValue) -> None:
    inbox = SystemEventInbox(kv)
    await inbox.push(KEY, "early", "tester", T0)

    async def append_while_another_arrives(message: dict[str, Any]) -> None:
        await inbox.push(KEY, "late", "tester", T0 + 5)

    delivered = await inbox.deliver(KEY, append_while_another_arrives, "run-1")
    assert delivered is not None and "early" in delivered["content"]
    assert "late" not in delivered["content"]
    transcript = Transcript()
    later = await inbox.deliver(KEY, transcript.append, "run-2")
    assert later is not None and "late" in later["content"] and "early" not in later["content"]


async def test_concurrent_pushes_lose_nothing_and_the_bound_refuses(kv: KeyValue) -> None:
    inbox = SystemEventInbox(kv)
    counts = await asyncio.gather(*(inbox.push(KEY, f"e{n}", "t", T0) for n in range(20)))
    assert sorted(counts) == list(range(1, 21))
    for n in range(20, MAX_EVENTS):
        await inbox.push(KEY, f"e{n}", "t", T0)
    with pytest.raises(Conflict) as full:
        await inbox.push(KEY, "overflow", "t", T0)
    assert full.value.data.get("code") == "SYSTEM_EVENTS_FULL"
    big = SystemEventInbox(kv)
    other = "agent:main:big"
    await big.push(other, "x" * 200_000, "t", T0)
    with pytest.raises(Conflict):
        await big.push(other, "y" * 70_000, "t", T0)
    assert await big.waiting(other) == 1


def section(agents: dict[str, Any]) -> HeartbeatSection:
    return HeartbeatSection.model_validate({"agents": agents})


async def test_reconcile_follows_the_config(kv: KeyValue) -> None:
    store = CronStore(kv)
    await reconcile(store, section({"main": {"every": "10s"}, "ops": {"every": "1m"}}), T0)
    jobs = {j.job_id: j for j in await store.all_jobs()}
    assert set(jobs) == {"hb-main", "hb-ops"}
    main = jobs["hb-main"]
    assert main.next_run_at_ms == T0 + 10_000 and main.anchor_ms == T0
    assert main.payload.kind == "agentTurn" and main.payload.session_key == KEY

    # Two replicas reconciling the same document at once agree; nothing moves.
    await asyncio.gather(
        reconcile(store, section({"main": {"every": "10s"}, "ops": {"every": "1m"}}), T0 + 5),
        reconcile(store, section({"main": {"every": "10s"}, "ops": {"every": "1m"}}), T0 + 6),
    )
    assert (await store.get("hb-main"))[0] == main

    # A new prompt keeps the grid; a new interval restarts it; a removed agent goes.
    later = T0 + 25_000
    await reconcile(store, section({"main": {"every": "10s", "prompt": "look around"}}), later)
    kept = (await store.get("hb-main"))[0]
    assert kept.payload.message == "look around" and kept.anchor_ms == T0
    assert {j.job_id for j in await store.all_jobs()} == {"hb-main"}
    await reconcile(store, section({"main": {"every": "30s"}}), later)
    moved = (await store.get("hb-main"))[0]
    assert isinstance(moved.schedule, EverySchedule) and moved.schedule.every_ms == 30_000
    assert (moved.anchor_ms, moved.next_run_at_ms) == (later, later + 30_000)
    await reconcile(store, section({"main": {"enabled": False}}), later)
    assert await store.all_jobs() == []
