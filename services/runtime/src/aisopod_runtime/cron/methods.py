"""cron.status / list / add / update / run / remove / runs, and the `cron.event` broadcasts."""

from __future__ import annotations

import uuid
from typing import Any

from aisopod.catalogue.cron import (
    CronAddParams,
    CronJob,
    CronJobIdParams,
    CronListParams,
    CronListResult,
    CronRunResult,
    CronRunsParams,
    CronRunsResult,
    CronStatusResult,
    CronUpdateParams,
)
from aisopod.catalogue.fields import OkResult
from aisopod.listings import JobRecord, cron_list_result
from aisopod.rpc import CallContext
from aisopod.wire import EmptyParams
from aisopod_runtime.cron import schedule as schedules
from aisopod_runtime.cron.scheduler import Emit, Scheduler, new_run_id
from aisopod_runtime.cron.store import CronStore, RunRecord


class CronMethods:
    def __init__(self, store: CronStore, scheduler: Scheduler, emit: Emit) -> None:
        self.store = store
        self.scheduler = scheduler
        self.emit = emit

    @property
    def now_ms(self) -> int:
        return self.scheduler.clock.now_ms()

    async def status(self, params: EmptyParams, ctx: CallContext) -> CronStatusResult:
        jobs = await self.store.all_jobs()
        enabled = self.scheduler.settings().enabled
        scheduled = [j for j in jobs if j.enabled and j.next_run_at_ms is not None]
        soonest = min(scheduled, key=lambda j: j.next_run_at_ms or 0, default=None)
        return CronStatusResult(
            enabled=enabled,
            jobs=len(jobs),
            enabled_jobs=sum(j.enabled for j in jobs),
            running=sum(j.lease is not None for j in jobs),
            next_wake_at_ms=soonest.next_run_at_ms if enabled and soonest else None,
            next_job_id=soonest.job_id if enabled and soonest else None,
        )

    async def list(self, params: CronListParams, ctx: CallContext) -> CronListResult:
        return cron_list_result(await self.store.all_jobs(), params.include_disabled)

    async def add(self, params: CronAddParams, ctx: CallContext) -> CronJob:
        schedules.validate(params.schedule)
        now = self.now_ms
        job = JobRecord(
            job_id="job_" + uuid.uuid4().hex[:20],
            name=params.name,
            schedule=params.schedule,
            payload=params.payload,
            enabled=params.enabled,
            created_at_ms=now,
            updated_at_ms=now,
            anchor_ms=now,
            next_run_at_ms=schedules.next_run_ms(
                params.schedule, after_ms=now, anchor_ms=now, fired=False
            ),
        )
        await self.store.create(job)
        await self._changed(job, "added")
        return job.public()

    async def update(self, params: CronUpdateParams, ctx: CallContext) -> CronJob:
        patch = params.patch
        if patch.schedule is not None:
            schedules.validate(patch.schedule)
        now = self.now_ms

        def apply(job: JobRecord) -> JobRecord:
            changes: dict[str, Any] = {"updated_at_ms": now}
            if patch.name is not None:
                changes["name"] = patch.name
            if patch.payload is not None:
                changes["payload"] = patch.payload
            if patch.enabled is not None:
                changes["enabled"] = patch.enabled
            rescheduled = patch.schedule is not None or (patch.enabled and not job.enabled)
            if rescheduled:
                schedule = patch.schedule if patch.schedule is not None else job.schedule
                changes["schedule"] = schedule
                changes["anchor_ms"] = now
                changes["next_run_at_ms"] = schedules.next_run_ms(
                    schedule, after_ms=now, anchor_ms=now, fired=False
                )
            return job.model_copy(update=changes)

        updated = await self.store.change(params.job_id, apply)
        assert updated is not None
        await self._changed(updated, "updated")
        return updated.public()

    async def run(self, params: CronJobIdParams, ctx: CallContext) -> CronRunResult:
        """Fire now on this replica, whatever the schedule; the schedule is left as is."""
        now = self.now_ms
        run = RunRecord(
            run_id=new_run_id(),
            job_id=params.job_id,
            trigger="manual",
            started_at=now,
            instance=self.scheduler.instance,
        )

        def mark(job: JobRecord) -> JobRecord:
            return job.model_copy(
                update={"last_run_at_ms": now, "last_run_id": run.run_id, "last_status": "running"}
            )

        job = await self.store.change(params.job_id, mark)
        assert job is not None
        self.scheduler.start_run(job, run)
        return CronRunResult(run_id=run.run_id)

    async def remove(self, params: CronJobIdParams, ctx: CallContext) -> OkResult:
        job, _ = await self.store.get(params.job_id)
        await self.store.delete(params.job_id)
        await self.emit(
            {"jobId": job.job_id, "action": "removed", "status": "removed", "runId": None}
        )
        return OkResult()

    async def runs(self, params: CronRunsParams, ctx: CallContext) -> CronRunsResult:
        await self.store.get(params.job_id)  # NOT_FOUND for an unknown job
        runs = await self.store.runs(params.job_id)
        return CronRunsResult(runs=[r.public() for r in runs[: params.limit]])

    async def _changed(self, job: JobRecord, action: str) -> None:
        status = "enabled" if job.enabled else "disabled"
        await self.emit({"jobId": job.job_id, "action": action, "status": status, "runId": None})
        self.scheduler.poke()
