"""The config's heartbeats as job records that cron's `Scheduler` fires.

One job per agent with an enabled heartbeat, `hb-<agentId>` in KV `heartbeat` (the cron
store's layout: `job.<id>`, `runs.<id>`): an `every` schedule and an `agentTurn` payload
into the agent's main session. Every replica reconciles on start and on each config change;
the writes are compare-and-set or create-if-absent, so replicas reconciling at once agree
(the second finds the job already as wanted and leaves it). A changed interval restarts the
grid from the change; a changed prompt keeps it.
"""

from __future__ import annotations

import contextlib
import functools
import logging

from nats.js.errors import KeyWrongLastSequenceError

from aisopod.catalogue.cron import AgentTurnPayload, EverySchedule
from aisopod.config.sections.heartbeat import EffectiveHeartbeat, HeartbeatSection
from aisopod.errors import NotFound
from aisopod.listings import JobRecord
from aisopod_runtime.cron.store import CronStore

log = logging.getLogger("aisopod.runtime.heartbeat")

JOB_PREFIX = "hb-"


def job_id(agent_id: str) -> str:
    return JOB_PREFIX + agent_id


def main_session(agent_id: str) -> str:
    return f"agent:{agent_id}:main"


def payload(hb: EffectiveHeartbeat) -> AgentTurnPayload:
    return AgentTurnPayload(
        kind="agentTurn",
        message=hb.prompt,
        agent_id=hb.agent_id,
        session_key=main_session(hb.agent_id),
    )


def new_job(hb: EffectiveHeartbeat, now_ms: int) -> JobRecord:
    return JobRecord(
        job_id=job_id(hb.agent_id),
        name=f"heartbeat {hb.agent_id}",
        schedule=EverySchedule(kind="every", every_ms=hb.every_ms),
        payload=payload(hb),
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
        anchor_ms=now_ms,
        next_run_at_ms=now_ms + hb.every_ms,
    )


def refreshed(job: JobRecord, hb: EffectiveHeartbeat, now_ms: int) -> JobRecord | None:
    """`job` brought in line with `hb`; None when it already is."""
    wanted = payload(hb)
    regrid = not (isinstance(job.schedule, EverySchedule) and job.schedule.every_ms == hb.every_ms)
    if not regrid and job.payload == wanted and job.enabled:
        return None
    changes: dict[str, object] = {"payload": wanted, "enabled": True, "updated_at_ms": now_ms}
    if regrid:
        changes.update(
            schedule=EverySchedule(kind="every", every_ms=hb.every_ms),
            anchor_ms=now_ms,
            next_run_at_ms=now_ms + hb.every_ms,
        )
    return job.model_copy(update=changes)


async def reconcile(store: CronStore, section: HeartbeatSection, now_ms: int) -> None:
    """Make the job records say what the config says."""
    wanted = {job_id(hb.agent_id): hb for hb in section.scheduled()}
    existing = {job.job_id: job for job in await store.all_jobs()}
    for stale in existing.keys() - wanted.keys():
        with contextlib.suppress(NotFound):  # another replica removed it first
            await store.delete(stale)
    for key, hb in wanted.items():
        if key not in existing:
            try:
                await store.create(new_job(hb, now_ms))
            except KeyWrongLastSequenceError:
                pass  # another replica created it first; the change below checks it
            else:
                continue
        try:
            await store.change(key, functools.partial(refreshed, hb=hb, now_ms=now_ms))
        except NotFound:
            log.info("heartbeat job %s vanished while reconciling; next change recreates it", key)
