"""Heartbeats and wake: scheduled agent turns, waking an agent now, system events.

A system event is a line of text queued for a session; the session's next turn (a
heartbeat, a wake or any message) takes the queue into its prompt. Exactly one runtime
replica fires each heartbeat slot (the cron scheduler's lease); that is the owner's
business, the catalogue only fixes the shapes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from aisopod.catalogue.fields import (
    AgentId,
    EpochMs,
    IdempotentParams,
    SessionKey,
    absent_when_none,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

R, W, A = Requirement.READ, Requirement.WRITE, Requirement.ADMIN
RT = ServiceName.RUNTIME

EVENT_TEXT_MAX = 64 * 1024
EventText = Annotated[
    str, StringConstraints(min_length=1, max_length=EVENT_TEXT_MAX, pattern=r"\S")
]

HeartbeatStatus = Literal["sent", "ok-empty", "ok-token", "skipped", "failed"]


class HeartbeatEvent(Result):
    """One heartbeat's outcome. `sent`: the agent answered something (in its session);
    `ok-token`: it answered HEARTBEAT_OK (nothing to report); `ok-empty`: an empty answer;
    `skipped` with `reason` (quiet-hours, disabled); `failed` with `reason` (the error)."""

    ts: EpochMs
    status: HeartbeatStatus
    agent_id: str
    session_key: str
    trigger: Literal["schedule", "wake"]
    reason: str | None = absent_when_none()
    preview: str | None = absent_when_none()
    """The start of the answer (at most 200 characters) when `sent`."""
    duration_ms: int | None = absent_when_none()
    run_id: str | None = absent_when_none()
    """The agent run of the turn."""
    due_at_ms: EpochMs | None = absent_when_none()
    """The schedule slot (a scheduled heartbeat)."""
    instance: str | None = absent_when_none()
    indicator_type: Literal["ok", "alert", "error"] | None = absent_when_none()


class WakeParams(IdempotentParams):
    """`now`: queue `text` and run the agent's heartbeat turn at once; `next-heartbeat`:
    queue it for the session's next turn."""

    mode: Literal["now", "next-heartbeat"]
    text: EventText
    agent_id: AgentId | None = None
    session_key: SessionKey | None = None


class WakeResult(Result):
    ok: Literal[True] = True
    mode: Literal["now", "next-heartbeat"]
    agent_id: str
    session_key: str
    queued: int = Field(ge=0)
    """System events now waiting for the session's next turn (this one included)."""
    run_id: str | None = None
    """The turn started now (mode `now`); null when heartbeats are switched off."""


class SystemEventParams(IdempotentParams):
    """`wake: true` also runs the session's heartbeat turn now (as `wake` mode `now`)."""

    text: EventText
    session_key: SessionKey | None = None
    agent_id: AgentId | None = None
    wake: bool = False


class SystemEventResult(Result):
    ok: Literal[True] = True
    session_key: str
    queued: int = Field(ge=0)
    run_id: str | None = None


class QuietHoursInfo(Result):
    start: str
    end: str
    timezone: str


class AgentHeartbeatInfo(Result):
    agent_id: str
    enabled: bool
    every: str
    every_ms: int
    prompt: str
    session_key: str
    quiet_hours: QuietHoursInfo | None = None
    next_due_at_ms: EpochMs | None = None
    running: bool = False
    last: HeartbeatEvent | None = None


class LastHeartbeatParams(Params):
    agent_id: AgentId | None = None


class LastHeartbeatResult(Result):
    """`last`: the newest heartbeat event (of `agentId` when given), null before any;
    `enabled`: the live switch (`set-heartbeats`); `agents`: the configured heartbeats."""

    enabled: bool
    last: HeartbeatEvent | None = None
    agents: list[AgentHeartbeatInfo]


class SetHeartbeatsParams(Params):
    enabled: bool


class SetHeartbeatsResult(Result):
    ok: Literal[True] = True
    enabled: bool


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "wake",
        RT,
        W,
        WakeParams,
        WakeResult,
        idempotent=True,
        description="queue a system event and wake the agent",
    ),
    MethodSpec(
        "system-event",
        RT,
        A,
        SystemEventParams,
        SystemEventResult,
        idempotent=True,
        description="queue a system event for a session's next turn",
    ),
    MethodSpec(
        "last-heartbeat",
        RT,
        R,
        LastHeartbeatParams,
        LastHeartbeatResult,
        description="the last heartbeat and the configured ones",
    ),
    MethodSpec(
        "set-heartbeats",
        RT,
        A,
        SetHeartbeatsParams,
        SetHeartbeatsResult,
        description="switch every heartbeat on or off",
    ),
)
