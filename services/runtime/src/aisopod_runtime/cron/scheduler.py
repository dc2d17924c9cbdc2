"""The cron scheduler of one runtime replica.

Every replica runs one. A pass reads the jobs, and for each due one tries to *claim* the
due slot: a compare-and-set of the job record (on the revision it read) that advances
`nextRunAtMs` past now and writes a lease `{instance, runId, dueAtMs, expiresAtMs}`. Of two
replicas only one write can succeed, so exactly one fires the slot. Because the next run
is computed from *now*, a job whose slots passed while every runtime was down is due
once, fires once on recovery, and resumes its normal cadence. A held lease keeps the job
from firing again until its run ends (overlapping slots coalesce into one); a lease whose
holder died expires, and its run is recorded as `error`.

A KV write can fail without saying whether it was stored (JetStream retries through a
leader election for a while, then gives up: docs/deployment.md, "NATS cluster"). The
scheduler never leaves a lease of its own idle until it expires because of that: a claim
whose write failed is fired on the next pass that reads the lease as ours; a run whose
start could not be recorded fires anyway (its end record holds it); a run whose end (run
record, lease release) could not be stored is recorded again on every pass until it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aisopod.config.sections.misc import CronSection
from aisopod.errors import NotFound
from aisopod.listings import JobRecord, Lease
from aisopod_runtime.cron.clock import Clock
from aisopod_runtime.cron.schedule import next_run_ms
from aisopod_runtime.cron.store import CronStore, RunRecord

log = logging.getLogger("aisopod.runtime.cron")

MAX_IDLE_S = 1.0
SHORT_LEASE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # ok | error
    error: str | None = None
    agent_run_id: str | None = None


Fire = Callable[[JobRecord, RunRecord], Awaitable[Outcome]]
Emit = Callable[[dict[str, object]], Awaitable[None]]


def is_due(job: JobRecord, now_ms: int) -> bool:
    if not job.enabled or job.next_run_at_ms is None or job.next_run_at_ms > now_ms:
        return False
    return job.lease is None or job.lease.expires_at_ms <= now_ms


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:20]


class Scheduler:
    def __init__(
        self,
        store: CronStore,
        *,
        instance: str,
        clock: Clock,
        fire: Fire,
        emit: Emit,
        settings: Callable[[], CronSection],
    ) -> None:
        self.store = store
        self.instance = instance
        self.clock = clock
        self.fire = fire
        self.emit = emit
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._runs: set[asyncio.Task[None]] = set()
        self._unsure: dict[str, RunRecord] = {}
        """Per job: a claim whose write failed with no answer; it may have been stored."""
        self._unrecorded: dict[str, tuple[JobRecord, RunRecord]] = {}
        """Per run id: a run that ended here (its end record) whose end is not stored yet."""

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="cron-scheduler")

    def poke(self) -> None:
        """Re-read the jobs now (a job was added or changed here)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for task in list(self._runs):
            task.cancel()
        if self._runs:
            await asyncio.wait(set(self._runs), timeout=3.0)

    async def _loop(self) -> None:
        while True:
            try:
                delay = await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("cron pass failed; retrying", exc_info=True)
                delay = MAX_IDLE_S
            self._wake.clear()
            await self.clock.sleep(delay, self._wake)

    # -- one pass ----------------------------------------------------------------------
    async def tick(self) -> float:
        """Claim and start every due job; the seconds until the next job is due (capped)."""
        now = self.clock.now_ms()
        for job, ended in list(self._unrecorded.values()):
            try:  # first: its lease is then released in what this pass reads
                await self._record_end(job, ended)
            except Exception:  # still unavailable: the next pass tries again
                log.warning("could not record the end of cron run %s", ended.run_id)
        jobs = await self.store.all_jobs() if self.settings().enabled else []
        soonest = MAX_IDLE_S
        for job in jobs:
            unsure = self._unsure.pop(job.job_id, None)
            if unsure is not None and job.lease is not None and job.lease.run_id == unsure.run_id:
                self.start_run(job, unsure)  # that claim was stored: the slot is ours to fire
            elif is_due(job, now):
                claimed = await self.claim(job.job_id, now)
                if claimed is not None:
                    self.start_run(*claimed)
            elif job.enabled and job.next_run_at_ms is not None:
                soonest = min(soonest, max((job.next_run_at_ms - now) / 1000, 0.0))
        return soonest

    async def claim(self, job_id: str, now: int) -> tuple[JobRecord, RunRecord] | None:
        """Take the due slot of `job_id`, or None when it is not due or another took it."""
        try:
            job, revision = await self.store.get(job_id)
        except NotFound:
            return None
        if not is_due(job, now):
            return None
        assert job.next_run_at_ms is not None
        stale = job.lease
        run = RunRecord(
            run_id=new_run_id(),
            job_id=job.job_id,
            due_at_ms=job.next_run_at_ms,
            started_at=now,
            instance=self.instance,
        )
        lease_ms = SHORT_LEASE_MS
        if job.payload.kind == "agentTurn":
            lease_ms += self.settings().agent_wait_ms
        claimed = job.model_copy(
            update={
                "next_run_at_ms": next_run_ms(
                    job.schedule, after_ms=now, anchor_ms=job.anchor_ms, fired=True
                ),
                "last_run_at_ms": now,
                "last_run_id": run.run_id,
                "last_status": "running",
                "lease": Lease(
                    instance=self.instance,
                    run_id=run.run_id,
                    due_at_ms=job.next_run_at_ms,
                    expires_at_ms=now + lease_ms,
                ),
            }
        )
        try:
            written = await self.store.put(claimed, revision)
        except Exception:
            self._unsure[job.job_id] = run  # the next pass sees whether it was stored
            raise
        if not written and not await self._claimed_by(job.job_id, run.run_id):
            return None  # another replica claimed it first
        if stale is not None:
            try:
                await self._expire(job, stale, now)
            except Exception:  # the old run's record only: the slot is claimed, fire it
                log.warning("could not record the expiry of cron run %s", stale.run_id)
        return claimed, run

    async def _claimed_by(self, job_id: str, run_id: str) -> bool:
        """Whether the job's lease is `run_id`'s after a claim read as lost: a retried write
        can meet its own first copy, stored though unanswered, as "wrong last sequence"."""
        try:
            job, _ = await self.store.get(job_id)
        except NotFound:
            return False
        return job.lease is not None and job.lease.run_id == run_id

    async def _expire(self, job: JobRecord, lease: Lease, now: int) -> None:
        runs = await self.store.runs(job.job_id)
        previous = next((r for r in runs if r.run_id == lease.run_id), None)
        if previous is not None and previous.status == "running":
            previous = previous.model_copy(
                update={
                    "status": "error",
                    "ended_at": now,
                    "error": f"lease expired: {lease.instance} stopped while running it",
                }
            )
            await self.store.record_run(previous, self.settings().run_history)

    # -- running -----------------------------------------------------------------------
    def start_run(self, job: JobRecord, run: RunRecord) -> None:
        task = asyncio.create_task(self._run(job, run), name=f"cron-{run.run_id}")
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def _run(self, job: JobRecord, run: RunRecord) -> None:
        try:
            await self.store.record_run(run, self.settings().run_history)
        except Exception:  # the slot is claimed: fire it; the end record holds the run too
            log.warning("could not record the start of cron run %s", run.run_id, exc_info=True)
        await self._emit(job, "started", "running", run.run_id)
        try:
            outcome = await self.fire(job, run)
        except asyncio.CancelledError:
            outcome = Outcome("error", "the runtime stopped during the run")
            await asyncio.shield(self._finish(job, run, outcome))
            raise
        except Exception as exc:
            log.exception("cron job %s failed", job.job_id)
            outcome = Outcome("error", f"{type(exc).__name__}: {exc}")
        await self._finish(job, run, outcome)

    async def _finish(self, job: JobRecord, run: RunRecord, outcome: Outcome) -> None:
        done = run.model_copy(
            update={
                "status": outcome.status,
                "error": outcome.error,
                "agent_run_id": outcome.agent_run_id,
                "ended_at": self.clock.now_ms(),
            }
        )
        try:
            await self._record_end(job, done)
        except Exception:
            # Kept and retried by every pass: the lease would otherwise hold the job idle
            # until it expires.
            self._unrecorded[run.run_id] = (job, done)
            log.warning("could not record the end of cron run %s", run.run_id, exc_info=True)
        await self._emit(job, "finished", outcome.status, run.run_id)
        self.poke()

    async def _record_end(self, job: JobRecord, done: RunRecord) -> None:
        """Store the run's end record and release its lease (both writes repeatable)."""

        def release(current: JobRecord) -> JobRecord | None:
            if current.last_run_id != done.run_id:
                return None
            lease = current.lease
            mine = lease is not None and lease.run_id == done.run_id
            return current.model_copy(
                update={"last_status": done.status, "lease": None if mine else lease}
            )

        try:
            await self.store.record_run(done, self.settings().run_history)
            await self.store.change(job.job_id, release)
        except NotFound:
            pass  # removed while running
        self._unrecorded.pop(done.run_id, None)

    async def _emit(self, job: JobRecord, action: str, status: str, run_id: str | None) -> None:
        try:
            await self.emit(
                {"jobId": job.job_id, "action": action, "status": status, "runId": run_id}
            )
        except Exception:
            log.warning("could not publish cron.event", exc_info=True)
