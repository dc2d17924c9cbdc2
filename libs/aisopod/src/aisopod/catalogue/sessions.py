"""sessions: list, preview, resolve, send into another session, patch, reset and delete."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from aisopod.catalogue.chat import CompactionRecord
from aisopod.catalogue.fields import (
    AgentId,
    EpochMs,
    IdempotentParams,
    Label,
    Message,
    ModelRef,
    OkResult,
    PatchParams,
    RunStatus,
    SessionKey,
    TimeoutMs,
    absent_when_none,
)
from aisopod.catalogue.spec import LONG_RUN_WAIT_S, MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

R, W, A = Requirement.READ, Requirement.WRITE, Requirement.ADMIN
RT = ServiceName.RUNTIME

ThinkingLevel = Literal["off", "minimal", "low", "medium", "high"]
SendPolicy = Literal["allow", "deny"]


class SessionEntry(Result):
    key: str
    agent_id: str
    label: str | None = None
    updated_at: EpochMs
    created_at: EpochMs | None = absent_when_none()
    last_message: str | None = None
    title: str | None = absent_when_none()
    """A short title from the session's first user message (`aisopod.sessiontitle`),
    recorded when that message is sent; absent for sessions from before titles existed
    and for those whose first message gives none (a `/command`)."""
    model: str | None = None
    thinking_level: ThinkingLevel | None = None
    send_policy: SendPolicy | None = None


class SessionsListParams(Params):
    agent_id: AgentId | None = None
    limit: int | None = Field(default=None, ge=1, le=1000)
    active_minutes: int | None = Field(default=None, ge=1, le=525_600)
    search: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class SessionsListResult(Result):
    sessions: list[SessionEntry]


class SessionsSendParams(IdempotentParams):
    session_key: SessionKey
    message: Message
    wait: bool = False
    timeout_ms: TimeoutMs | None = None


class SessionsSendResult(Result):
    """`{runId}` at once, or with `status` and `reply` when `wait` was set."""

    run_id: str
    status: RunStatus | None = None
    reply: str | None = None


class SessionsPatchParams(PatchParams):
    """Omitted fields stay; an explicit null clears."""

    key: SessionKey
    label: Label | None = None
    model: ModelRef | None = None
    thinking_level: ThinkingLevel | None = None
    send_policy: SendPolicy | None = None

    @model_validator(mode="after")
    def _something_to_patch(self) -> SessionsPatchParams:
        if not self.model_fields_set - {"key"}:
            raise ValueError("nothing to patch: give label, model, thinkingLevel or sendPolicy")
        return self


class SessionsPatchResult(Result):
    key: str
    entry: SessionEntry


class SessionKeyParams(Params):
    key: SessionKey


# 50 sessions x 10 messages x 200 characters stays under half a MiB even in 4-byte UTF-8,
# well inside NATS' 1 MiB payload and the WebSocket frame limit.
PREVIEW_MAX_SESSIONS = 50
PREVIEW_MAX_MESSAGES = 10


class SessionsPreviewParams(Params):
    """Up to 50 sessions, up to 10 messages each: one call for a whole session list."""

    keys: list[SessionKey] = Field(min_length=1, max_length=PREVIEW_MAX_SESSIONS)
    limit: int = Field(default=5, ge=1, le=PREVIEW_MAX_MESSAGES)


class PreviewMessage(Result):
    """A transcript message flattened to one line of text, cut to 200 characters."""

    role: Literal["user", "assistant", "system", "tool"]
    text: str
    ts: EpochMs


class SessionPreview(Result):
    """`missing`: no such session; `empty`: a session without messages."""

    key: str
    status: Literal["ok", "empty", "missing"]
    messages: list[PreviewMessage]


class SessionsPreviewResult(Result):
    previews: list[SessionPreview]


class SessionsResolveParams(Params):
    """Exactly one of `key` (either form) or `label`; `agentId` narrows a label search."""

    key: SessionKey | None = None
    label: Label | None = None
    agent_id: AgentId | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SessionsResolveParams:
        if (self.key is None) == (self.label is None):
            raise ValueError("give exactly one of key or label")
        if self.key is not None and self.agent_id is not None:
            raise ValueError("agentId narrows a label search; a key names its agent")
        return self


class SessionsResolveResult(Result):
    key: str
    entry: SessionEntry


class SessionsCompactParams(Params):
    """`keepTurns` (default `models.agents.compaction.keepTurns`): the newest turns kept as
    they are (a turn starts at a user message); `instructions` steer the summary."""

    key: SessionKey
    keep_turns: int | None = Field(default=None, ge=0, le=100)
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None


class SessionsCompactResult(Result):
    """`compacted: false` with `reason` when there was nothing older than the kept turns;
    otherwise the entry written (its id, the summary and what it replaced)."""

    key: str
    compacted: bool
    reason: str | None = absent_when_none()
    entry_id: str | None = absent_when_none()
    summary: str | None = absent_when_none()
    compaction: CompactionRecord | None = absent_when_none()


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "sessions.list", RT, R, SessionsListParams, SessionsListResult, description="sessions"
    ),
    MethodSpec(
        "sessions.preview",
        RT,
        R,
        SessionsPreviewParams,
        SessionsPreviewResult,
        description="last messages of many sessions",
    ),
    MethodSpec(
        "sessions.resolve",
        RT,
        R,
        SessionsResolveParams,
        SessionsResolveResult,
        description="canonical key from a key or a label",
    ),
    MethodSpec(
        "sessions.send",
        RT,
        W,
        SessionsSendParams,
        SessionsSendResult,
        idempotent=True,
        description="message into another session (agent-to-agent)",
        long_wait_s=LONG_RUN_WAIT_S,
    ),
    MethodSpec(
        "sessions.patch", RT, A, SessionsPatchParams, SessionsPatchResult, description="patch"
    ),
    MethodSpec("sessions.reset", RT, A, SessionKeyParams, OkResult, description="clear"),
    MethodSpec(
        "sessions.compact",
        RT,
        A,
        SessionsCompactParams,
        SessionsCompactResult,
        description="summarise old turns, keep the last N",
        long_wait_s=LONG_RUN_WAIT_S,
    ),
    MethodSpec("sessions.delete", RT, A, SessionKeyParams, OkResult, description="delete"),
)
