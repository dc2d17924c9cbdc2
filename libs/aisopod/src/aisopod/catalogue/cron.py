"""cron: scheduled agent turns and system events.

Exactly one runtime replica fires each due job (a lease in KV); that is the owner's business,
the catalogue only fixes the shapes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from aisopod.catalogue.fields import (
    AgentId,
    EpochMs,
    Ident,
    Message,
    Name,
    OkResult,
    SessionKey,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, A = Requirement.READ, Requirement.ADMIN
RT = ServiceName.RUNTIME


class CronSchedule(Params):
    """A cron expression (5 fields, or 6 with seconds) in `tz` (IANA name; default UTC)."""

    kind: Literal["cron"]
    expr: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tz: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+/-]{1,64}$")] | None = None

    @field_validator("expr")
    @classmethod
    def _field_count(cls, expr: str) -> str:
        if not 5 <= len(expr.split()) <= 6:
            raise ValueError("a cron expression has 5 or 6 fields")
        return expr


class EverySchedule(Params):
    kind: Literal["every"]
    # At least a second apart; at most a year.
    every_ms: int = Field(ge=1000, le=366 * 86_400_000)


class AtSchedule(Params):
    """Once, at an ISO 8601 time with offset or an epoch timestamp."""

    kind: Literal["at"]
    at: AwareDatetime


Schedule = Annotated[CronSchedule | EverySchedule | AtSchedule, Field(discriminator="kind")]


class AgentTurnPayload(Params):
    kind: Literal["agentTurn"]
    message: Message
    agent_id: AgentId | None = None
    session_key: SessionKey | None = None


class SystemEventPayload(Params):
    kind: Literal["systemEvent"]
    text: Message


Payload = Annotated[AgentTurnPayload | SystemEventPayload, Field(discriminator="kind")]


class CronJob(Result):
    job_id: str
    name: str
    schedule: Schedule
    payload: Payload
    enabled: bool
    created_at_ms: EpochMs
    updated_at_ms: EpochMs
    next_run_at_ms: EpochMs | None = None
    last_run_at_ms: EpochMs | None = None
    last_status: str | None = None
    last_run_id: str | None = None
    running: bool = False
    """A replica holds the job's lease: a run is in progress."""


class CronListParams(Params):
    include_disabled: bool = False


class CronListResult(Result):
    jobs: list[CronJob]


class CronAddParams(Params):
    name: Name
    schedule: Schedule
    payload: Payload
    enabled: bool = True


class CronJobPatch(Params):
    name: Name | None = None
    schedule: Schedule | None = None
    payload: Payload | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _something_to_patch(self) -> CronJobPatch:
        if not {k for k in self.model_fields_set if getattr(self, k) is not None}:
            raise ValueError("nothing to patch: give name, schedule, payload or enabled")
        return self


class CronUpdateParams(Params):
    job_id: Ident
    patch: CronJobPatch


class CronJobIdParams(Params):
    job_id: Ident


class CronRunResult(Result):
    run_id: str


class CronRunsParams(Params):
    job_id: Ident
    limit: int = Field(default=50, ge=1, le=1000)


class CronRunRecord(Result):
    run_id: str
    job_id: str
    status: Literal["running", "ok", "error", "skipped"]
    trigger: Literal["schedule", "manual"]
    due_at_ms: EpochMs | None = None
    started_at: EpochMs
    ended_at: EpochMs | None = None
    error: str | None = None
    instance: str | None = None
    """The replica that ran it."""
    agent_run_id: str | None = None
    """The agent run an `agentTurn` payload started."""


class CronRunsResult(Result):
    runs: list[CronRunRecord]


class CronStatusResult(Result):
    """`enabled` is the config switch; `nextWakeAtMs` the soonest enabled job's next run
    (null when cron is off or nothing is scheduled)."""

    enabled: bool
    jobs: int
    enabled_jobs: int
    running: int
    next_wake_at_ms: EpochMs | None = None
    next_job_id: str | None = None


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("cron.status", RT, R, EmptyParams, CronStatusResult, description="scheduler state"),
    MethodSpec("cron.list", RT, R, CronListParams, CronListResult, description="jobs"),
    MethodSpec("cron.add", RT, A, CronAddParams, CronJob, description="add a job"),
    MethodSpec("cron.update", RT, A, CronUpdateParams, CronJob, description="patch a job"),
    MethodSpec("cron.run", RT, A, CronJobIdParams, CronRunResult, description="run it now"),
    MethodSpec("cron.remove", RT, A, CronJobIdParams, OkResult, description="remove a job"),
    MethodSpec("cron.runs", RT, R, CronRunsParams, CronRunsResult, description="run history"),
)
