"""The cron scheduler against a real nats-server: two replicas, a manual clock.

Exactly one replica fires each due slot; slots missed while every replica was down fire
once; a lease whose holder died expires and its run is recorded as an error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
from nats.js.api import KeyValueConfig
from pydantic import TypeAdapter

from aisopod.catalogue.cron import Payload, Schedule
from aisopod.config.sections.misc import CronSection
from aisopod.errors import Unavailable
from aisopod.listings import JobRecord
from aisopod_runtime.cron.clock import ManualClock
from aisopod_runtime.cron.scheduler import Outcome, Scheduler
from aisopod_runtime.cron.store import CronStore, RunRecord

T0 = 1_800_000_000_000


@pytest.fixture
async def store(nats_url: str) -> AsyncIterator[CronStore]:
    nc = await nats.connect(nats_url)
    kv = await nc.jetstream().create_key_value(
        config=KeyValueConfig(bucket=f"cron_{uuid.uuid4().hex[:8]}")
    )
    yield CronStore(kv)
    await nc.close()


class LossyStore(CronStore):
    """Writes that fail as they do when JetStream gives up on a leader election: the next
    `put` that succeeds is stored and still raises (its answer lost), or is stored and
    reads as refused (its retry met the stored copy: "wrong last sequence"); the next
    `record_run`s or `change`s raise without storing."""

    def __init__(self, store: CronStore) -> None:
        super().__init__(store.kv)
        self.lose_put_answers = 0
        self.refuse_stored_puts = 0
        self.fail_record_runs = 0
        self.fail_changes = 0

    @staticmethod
    def _lost() -> Unavailable:
        return Unavailable("JetStream did not answer", code="JETSTREAM_UNAVAILABLE")

    async def put(self, job: JobRecord, revision: int) -> int:
        written = await super().put(job, revision)
        if written and self.lose_put_answers:
            self.lose_put_answers -= 1
            raise self._lost()
        if written and self.refuse_stored_puts:  # its retry met the stored first copy
            self.refuse_stored_puts -= 1
            return 0
        return written

    async def record_run(self, run: RunRecord, keep: int) -> None:
        if self.fail_record_runs:
            self.fail_record_runs -= 1
            raise self._lost()
        await super().record_run(run, keep)

    async def change(self, job_id: str, fn: Callable[[JobRecord], JobRecord | None]) -> Any:
        if self.fail_changes:
            self.fail_changes -= 1
            raise self._lost()
        return await super().change(job_id, fn)


class Replicas:
    """Two schedulers sharing one store and one manual clock, recording what they fire."""

    def __init__(self, store: CronStore) -> None:
        self.clock = ManualClock(T0)
        self.fired: list[tuple[str, str, int | None]] = []
        self.events: list[dict[str, object]] = []
        self.schedulers = [self._make(store, name) for name in ("rt-a", "rt-b")]

    def _make(self, store: CronStore, instance: str) -> Scheduler:
        async def fire(job: JobRecord, run: RunRecord) -> Outcome:
            self.fired.append((instance, job.job_id, run.due_at_ms))
            return Outcome("ok")

        async def emit(payload: dict[str, object]) -> None:
            self.events.append(payload)

        return Scheduler(
            store,
            instance=instance,
            clock=self.clock,
            fire=fire,
            emit=emit,
            settings=lambda: CronSection(),
        )

    async def tick_all(self) -> None:
        """Both replicas look at the same moment, concurrently; then their runs end."""
        await asyncio.gather(*(s.tick() for s in self.schedulers))
        deadline = time.monotonic() + 30
        while any(s._runs for s in self.schedulers):
            assert time.monotonic() < deadline, "runs did not finish"
            await asyncio.sleep(0.005)


async def add_job(store: CronStore, every_ms: int = 1000) -> JobRecord:
    job = JobRecord(
        job_id=f"job_{uuid.uuid4().hex[:12]}",
        name="t",
        schedule=TypeAdapter(Schedule).validate_python({"kind": "every", "everyMs": every_ms}),
        payload=TypeAdapter(Payload).validate_python({"kind": "systemEvent", "text": "hi"}),
        created_at_ms=T0,
        updated_at_ms=T0,
        anchor_ms=T0,
        next_run_at_ms=T0 + every_ms,
    )
    await store.create(job)
    return job


async def test_two_replicas_fire_each_due_slot_exactly_once(store: CronStore) -> None:
    replicas = Replicas(store)
    job = await add_job(store)
    await replicas.tick_all()
    assert replicas.fired == []  # not due yet
    for _ in range(6):
        replicas.clock.advance(1000)
        await replicas.tick_all()
    dues = [due for _, _, due in replicas.fired]
    assert dues == [T0 + 1000 * k for k in range(1, 7)]
    runs = await store.runs(job.job_id)
    assert len(runs) == 6 and {r.status for r in runs} == {"ok"}
    stored, _ = await store.get(job.job_id)
    assert stored.lease is None and stored.last_status == "ok"
    assert stored.next_run_at_ms == T0 + 7000
    started = [e for e in replicas.events if e["action"] == "started"]
    assert len(started) == 6


async def test_missed_slots_fire_once_on_recovery(store: CronStore) -> None:
    replicas = Replicas(store)
    job = await add_job(store)
    replicas.clock.advance(10_500)  # every replica was down through ten slots
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000]
    stored, _ = await store.get(job.job_id)
    assert stored.next_run_at_ms == T0 + 11_000  # back on the grid, no backlog
    await replicas.tick_all()
    assert len(replicas.fired) == 1
    replicas.clock.advance(500)
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000, T0 + 11_000]


async def test_a_dead_holders_lease_expires_and_its_run_is_an_error(store: CronStore) -> None:
    replicas = Replicas(store)
    job = await add_job(store)
    a, _ = replicas.schedulers
    replicas.clock.advance(1000)
    claimed = await a.claim(job.job_id, replicas.clock.now_ms())
    assert claimed is not None
    _, orphan = claimed
    await store.record_run(orphan, 50)  # a claimed it, started, then died
    replicas.clock.advance(1000)
    await replicas.tick_all()
    assert replicas.fired == []  # the lease still holds
    replicas.clock.advance(120_000)
    await replicas.tick_all()
    assert len(replicas.fired) == 1
    runs = {r.run_id: r for r in await store.runs(job.job_id)}
    assert runs[orphan.run_id].status == "error"
    assert "lease expired" in (runs[orphan.run_id].error or "")


async def test_disabled_jobs_and_disabled_cron_do_not_fire(store: CronStore) -> None:
    replicas = Replicas(store)
    job = await add_job(store)
    await store.change(job.job_id, lambda j: j.model_copy(update={"enabled": False}))
    replicas.clock.advance(5000)
    await replicas.tick_all()
    assert replicas.fired == []
    await store.change(job.job_id, lambda j: j.model_copy(update={"enabled": True}))
    for scheduler in replicas.schedulers:
        scheduler.settings = lambda: CronSection(enabled=False)
    await replicas.tick_all()
    assert replicas.fired == []


async def test_a_claim_stored_without_an_answer_fires_on_the_next_pass(store: CronStore) -> None:
    """The claim's write landed but its answer was lost: the lease is the claimer's, so it
    fires that slot on its next pass (not when the lease expires), and nobody else does."""
    lossy = LossyStore(store)
    replicas = Replicas(lossy)
    job = await add_job(lossy)
    a, _ = replicas.schedulers
    replicas.clock.advance(1000)
    lossy.lose_put_answers = 1
    with pytest.raises(Unavailable):
        await a.tick()
    assert replicas.fired == []
    stored, _ = await store.get(job.job_id)
    assert stored.lease is not None and stored.lease.instance == "rt-a"
    await replicas.tick_all()
    assert replicas.fired == [("rt-a", job.job_id, T0 + 1000)]
    replicas.clock.advance(1000)
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000, T0 + 2000]
    assert [r.status for r in await store.runs(job.job_id)] == ["ok", "ok"]


async def test_a_run_whose_start_or_end_was_not_stored_keeps_the_cadence(
    store: CronStore,
) -> None:
    """The start record lost: the slot fires anyway and its end record holds it. The end
    (lease release) lost: the next pass stores it, and the next slot fires on time."""
    lossy = LossyStore(store)
    replicas = Replicas(lossy)
    job = await add_job(lossy)
    lossy.fail_record_runs = 1
    replicas.clock.advance(1000)
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000]
    assert [r.status for r in await store.runs(job.job_id)] == ["ok"]
    lossy.fail_changes = 1
    replicas.clock.advance(1000)
    await replicas.tick_all()
    stored, _ = await store.get(job.job_id)
    assert stored.lease is not None  # the release was lost
    replicas.clock.advance(1000)
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000, T0 + 2000, T0 + 3000]
    stored, _ = await store.get(job.job_id)
    assert stored.lease is None and stored.last_status == "ok"
    assert [r.status for r in await store.runs(job.job_id)] == ["ok", "ok", "ok"]


async def test_a_claim_whose_retry_met_its_own_stored_copy_fires(store: CronStore) -> None:
    lossy = LossyStore(store)
    replicas = Replicas(lossy)
    job = await add_job(lossy)
    replicas.clock.advance(1000)
    lossy.refuse_stored_puts = 1
    await replicas.tick_all()
    assert [due for _, _, due in replicas.fired] == [T0 + 1000]
    stored, _ = await store.get(job.job_id)
    assert stored.lease is None and stored.last_status == "ok"
