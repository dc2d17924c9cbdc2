"""Cron jobs and their run records in KV `cron`.

Keys: `job.<jobId>` (the job, its next run time and its lease) and `runs.<jobId>` (the
newest run records first, bounded). Every change is a compare-and-set on the revision
read, so replicas never overwrite each other: the scheduler's claim of a due slot is such
a write (see scheduler.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import Field

from aisopod import codec
from aisopod.catalogue.cron import CronRunRecord
from aisopod.errors import Conflict, NotFound
from aisopod.jsread import snapshot
from aisopod.listings import JobRecord
from aisopod.wire import WireModel

_KEY_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CAS_ATTEMPTS = 8


class RunRecord(WireModel):
    run_id: str
    job_id: str
    status: str = "running"  # running | ok | error | skipped
    trigger: str = "schedule"  # schedule | manual
    due_at_ms: int | None = None
    started_at: int
    ended_at: int | None = None
    error: str | None = None
    instance: str | None = None
    agent_run_id: str | None = None

    def public(self) -> CronRunRecord:
        return CronRunRecord.model_validate(self.model_dump(by_alias=True, mode="json"))


class RunLog(WireModel):
    runs: list[RunRecord] = Field(default_factory=list)


def job_key(job_id: str) -> str:
    if not _KEY_SAFE.match(job_id):
        raise NotFound(f"no cron job {job_id!r}", code="JOB_NOT_FOUND")
    return f"job.{job_id}"


def runs_key(job_id: str) -> str:
    return f"runs.{job_key(job_id)[4:]}"


class CronStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, job_id: str) -> tuple[JobRecord, int]:
        try:
            entry = await self.kv.get(job_key(job_id))
        except KeyNotFoundError:
            raise NotFound(f"no cron job {job_id!r}", code="JOB_NOT_FOUND") from None
        if entry.value is None:
            raise NotFound(f"no cron job {job_id!r}", code="JOB_NOT_FOUND")
        return JobRecord.model_validate(codec.loads(entry.value)), entry.revision or 0

    async def create(self, job: JobRecord) -> None:
        await self.kv.create(job_key(job.job_id), _dump(job))

    async def put(self, job: JobRecord, revision: int) -> int:
        """Write `job` if the stored revision is still `revision`; 0 when it is not."""
        try:
            return await self.kv.update(job_key(job.job_id), _dump(job), last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return 0

    async def change(
        self, job_id: str, fn: Callable[[JobRecord], JobRecord | None]
    ) -> JobRecord | None:
        """Read-modify-write with retries; `fn` returning None leaves the job alone."""
        for _ in range(CAS_ATTEMPTS):
            job, revision = await self.get(job_id)
            updated = fn(job)
            if updated is None:
                return None
            if await self.put(updated, revision):
                return updated
        raise Conflict("the cron job changed concurrently; retry", code="CRON_BUSY")

    async def delete(self, job_id: str) -> None:
        await self.get(job_id)
        await self.kv.purge(job_key(job_id))
        await self.kv.purge(runs_key(job_id))

    async def all_jobs(self) -> list[JobRecord]:
        """Every job, read in one pass over the bucket."""
        return [JobRecord.model_validate(codec.loads(v)) for v in await self._values("job.*")]

    async def _values(self, pattern: str) -> list[bytes]:
        # A complete read: the KV watcher can end its initial snapshot early.
        return [entry.value for entry in await snapshot(self.kv, pattern) if entry.value]

    # -- run records -------------------------------------------------------------------
    async def runs(self, job_id: str) -> list[RunRecord]:
        try:
            entry = await self.kv.get(runs_key(job_id))
        except KeyNotFoundError:
            return []
        if not entry.value:
            return []
        return RunLog.model_validate(codec.loads(entry.value)).runs

    async def record_run(self, run: RunRecord, keep: int) -> None:
        """Insert or replace `run` (by runId) at the head of the job's run log."""
        key = runs_key(run.job_id)
        for attempt in range(CAS_ATTEMPTS):
            try:
                entry = await self.kv.get(key)
                log = RunLog.model_validate(codec.loads(entry.value or b"{}"))
                revision: int | None = entry.revision
            except KeyNotFoundError:
                log, revision = RunLog(), None
            others = [r for r in log.runs if r.run_id != run.run_id]
            existing = next((i for i, r in enumerate(log.runs) if r.run_id == run.run_id), None)
            if existing is None:
                runs = [run, *others]
            else:
                runs = list(log.runs)
                runs[existing] = run
            data = _dump(RunLog(runs=runs[:keep]))
            try:
                if revision is None:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
                return
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0.005 * (attempt + 1))
        raise Conflict("the run log changed concurrently; retry", code="CRON_BUSY")


def _dump(model: WireModel) -> bytes:
    return codec.dumps(model.model_dump(by_alias=True, mode="json"))
