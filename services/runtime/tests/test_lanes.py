"""Session lanes against a real nats-server: a lane stored before its run's record.

The runtime writes a run's record and takes its lane in one round trip, so another
runtime may find a lane naming a run with no record yet. The lane's own lease keeps that
run alive until it runs out; the record decides once it is stored (`holder_alive`, the
rule RunManager applies to runs of other runtimes), over a real KV bucket.
"""

from __future__ import annotations

import uuid
from typing import Any

import nats
import pytest
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.jsretry import ElectionTolerantJetStream
from aisopod.requester import Requester
from aisopod_runtime.lanes import Lanes, holder_alive, lane_key
from aisopod_runtime.runs import RunStore, now_ms
from tests.support.elections import lose_first_answers


def other_runtime(kv: KeyValue) -> Lanes:
    """Lanes as a second runtime sees them: it runs nothing itself."""
    store = RunStore(kv, "other")

    async def owner_alive(run_id: str, lane: dict[str, Any]) -> bool:
        return holder_alive(await store.get(run_id), lane)

    return Lanes(kv, owner_alive)


async def test_a_lane_without_its_record_is_alive_while_its_lease_holds(runs_kv: KeyValue) -> None:
    first = Lanes(runs_kv, lambda *_: _never())
    assert await first.try_acquire("agent:main:s", "run-a", None, lease_until=now_ms() + 60_000)
    # run-a's record is not stored: the lane's lease says it is alive.
    second = other_runtime(runs_kv)
    assert not await second.try_acquire("agent:main:s", "run-b")
    entry = await runs_kv.get(lane_key("agent:main:s"))
    assert codec.loads(entry.value or b"{}")["runId"] == "run-a"


async def test_a_lane_without_its_record_is_taken_over_once_its_lease_ran_out(
    runs_kv: KeyValue,
) -> None:
    first = Lanes(runs_kv, lambda *_: _never())
    assert await first.try_acquire("agent:main:s", "run-a", None, lease_until=now_ms() - 1)
    second = other_runtime(runs_kv)
    assert await second.try_acquire("agent:main:s", "run-b")
    assert await second.holds("agent:main:s", "run-b")
    assert not await first.holds("agent:main:s", "run-a")


async def test_the_record_decides_once_it_is_stored(runs_kv: KeyValue) -> None:
    store = RunStore(runs_kv, "first")
    record = store.new_record("run-a", "agent:main:s", "main")
    first = Lanes(runs_kv, lambda *_: _never())
    await store.create(record)
    # The lane's own lease ran out, but the record is stored and its lease holds.
    assert await first.try_acquire("agent:main:s", "run-a", None, lease_until=now_ms() - 1)
    second = other_runtime(runs_kv)
    assert not await second.try_acquire("agent:main:s", "run-b")
    await store.finish("run-a", "ok")
    assert await second.try_acquire("agent:main:s", "run-b")


async def test_a_lane_from_before_lane_leases_without_a_record_is_taken_over(
    runs_kv: KeyValue,
) -> None:
    await runs_kv.put(lane_key("agent:main:s"), codec.dumps({"runId": "gone"}))
    second = other_runtime(runs_kv)
    assert await second.try_acquire("agent:main:s", "run-b")


async def test_a_run_and_its_lane_written_through_lost_answers_are_its_own(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write of a turn's run and lane is stored while its answer is lost, and its
    retry refused by that stored copy (tests/support/elections.py). Each is recognised as
    its own: the record is created (not a failed turn), the lane taken (not "busy" with
    itself), a change applied once (not twice), the lane freed."""
    nc = await nats.connect(nats_url)
    js = ElectionTolerantJetStream(nc, requester=Requester(nc), retry_s=5.0)
    bucket = f"runs{uuid.uuid4().hex[:8]}"
    kv = await js.create_key_value(bucket=bucket)
    store = RunStore(kv, "me")
    lanes = Lanes(kv, lambda *_: _never())
    attempts = lose_first_answers(js, monkeypatch, times=4)

    await store.create({"runId": "run-a", "status": "running", "steps": 0})
    assert await lanes.try_acquire("agent:main:s", "run-a")
    applied = 0

    def step(record: dict[str, Any]) -> bool:
        nonlocal applied
        applied += 1
        record["steps"] += 1
        return True

    assert await store.change("run-a", step) is not None
    await lanes.release("agent:main:s", "run-a")
    monkeypatch.undo()

    assert len(attempts) == 8  # four writes, each retried once
    assert applied == 1
    assert await store.get("run-a") == {"runId": "run-a", "status": "running", "steps": 1}
    assert (await kv.get(lane_key("agent:main:s"))).value == b"{}"
    await js.delete_key_value(bucket)
    await nc.close()


async def _never() -> bool:
    raise AssertionError("the first runtime is never asked")
