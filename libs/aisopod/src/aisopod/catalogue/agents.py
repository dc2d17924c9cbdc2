"""agents: agent definitions and agent runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints, model_validator

from aisopod.catalogue.fields import (
    MIB,
    AgentId,
    EpochMs,
    IdempotentParams,
    Ident,
    Message,
    ModelRef,
    Name,
    OkResult,
    PatchParams,
    RunStatus,
    SessionKey,
    TimeoutMs,
    ToolName,
    absent_when_none,
)
from aisopod.catalogue.spec import LONG_RUN_WAIT_S, MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, W, A = Requirement.READ, Requirement.WRITE, Requirement.ADMIN
RT = ServiceName.RUNTIME

Instructions = Annotated[str, StringConstraints(max_length=MIB)]
ToolList = Annotated[list[ToolName], Field(max_length=256)]
# An avatar is an http(s) URL, a small data: URI, or a letter or emoji to show.
Avatar = Annotated[str, StringConstraints(min_length=1, max_length=16_384, pattern=r"\S")]
Emoji = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"\S")]


class AgentIdentitySettings(Params):
    """How the agent presents itself; each field wins over the agent's IDENTITY.md."""

    name: Name | None = None
    emoji: Emoji | None = None
    avatar: Avatar | None = None


class Agent(Result):
    id: str
    name: str
    model: str | None = None
    instructions: str | None = None
    tools: list[str] | None = None
    identity: dict[str, str] | None = absent_when_none()
    """`{name?, emoji?, avatar?}` as set by agents.create/update (agent.identity.get
    resolves it with IDENTITY.md)."""
    created_at: EpochMs | None = absent_when_none()
    updated_at: EpochMs | None = absent_when_none()


class AgentsListResult(Result):
    default_id: str
    agents: list[Agent]


class AgentsCreateParams(Params):
    id: AgentId | None = None
    name: Name
    model: ModelRef | None = None
    instructions: Instructions | None = None
    tools: ToolList | None = None
    identity: AgentIdentitySettings | None = None


class AgentsUpdateParams(PatchParams):
    """Omitted fields stay; an explicit null clears `model`, `instructions`, `tools` or
    `identity` (which is replaced whole)."""

    agent_id: AgentId
    name: Name | None = None
    model: ModelRef | None = None
    instructions: Instructions | None = None
    tools: ToolList | None = None
    identity: AgentIdentitySettings | None = None

    @model_validator(mode="after")
    def _something_to_update(self) -> AgentsUpdateParams:
        if not self.model_fields_set - {"agent_id"}:
            raise ValueError("nothing to update: give name, model, instructions, tools or identity")
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be cleared")
        return self


class AgentIdParams(Params):
    agent_id: AgentId


class AgentParams(IdempotentParams):
    message: Message
    agent_id: AgentId | None = None
    session_key: SessionKey | None = None
    timeout_ms: TimeoutMs | None = None
    wait: bool = False


class AgentRunResult(Result):
    """`accepted` at once, or the final status and result when `wait` was set."""

    run_id: str
    status: Literal["accepted"] | RunStatus
    result: JsonValue = None
    error: str | None = None


class AgentWaitParams(Params):
    run_id: Ident
    timeout_ms: TimeoutMs | None = None


class AgentWaitResult(Result):
    """`timeout` means the wait ended, not the run: `endedAt` is then absent."""

    run_id: str
    status: RunStatus
    started_at: EpochMs | None = absent_when_none()
    ended_at: EpochMs | None = absent_when_none()
    error: str | None = absent_when_none()


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("agents.list", RT, R, EmptyParams, AgentsListResult, description="agents"),
    MethodSpec("agents.create", RT, A, AgentsCreateParams, Agent, description="create agent"),
    MethodSpec("agents.update", RT, A, AgentsUpdateParams, Agent, description="update agent"),
    MethodSpec(
        "agents.delete", RT, A, AgentIdParams, OkResult, description="not the default agent"
    ),
    MethodSpec(
        "agent",
        RT,
        W,
        AgentParams,
        AgentRunResult,
        idempotent=True,
        description="run agent",
        long_wait_s=LONG_RUN_WAIT_S,
    ),
    MethodSpec(
        "agent.wait",
        RT,
        W,
        AgentWaitParams,
        AgentWaitResult,
        description="await run",
        long_wait_s=LONG_RUN_WAIT_S,
    ),
)
