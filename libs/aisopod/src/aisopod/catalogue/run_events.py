"""The payloads of a run's events, `chat.event` and `agent.event`: one model each, shared
by the runtime that emits them and every reader (http-api's turns, tests). Pure data.

The emitter publishes `model.wire()` (only the fields it set: a `delta` carries no
`usage`, a `final` carries `usage` even when it is null). Readers parse with
`model_validate`; a payload that does not parse is a sender's bug, not a spelling to guess.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from aisopod.catalogue.fields import absent_when_none
from aisopod.wire import Result

ChatState = Literal["delta", "final", "aborted", "error"]
AgentStream = Literal["lifecycle", "assistant", "tool", "error"]


class RunUsage(Result):
    """Tokens the run's model calls used, summed over its steps."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int | None = absent_when_none()
    """Part of `promptTokens` read from the provider's prompt cache (when it said so)."""
    cache_write_tokens: int | None = absent_when_none()
    """Part of `promptTokens` written to the provider's prompt cache (when it said so)."""


class EventMessage(Result):
    """The assistant's text so far (`delta`), whole (`final`) or partial (`aborted`/`error`)."""

    role: Literal["assistant"]
    content: str
    id: str | None = None
    """The transcript id of the stored answer (`final` only)."""


class RunEventBase(Result):
    run_id: str
    session_key: str
    seq: int = Field(ge=1)
    """Counts per run and per event name: 1, 2, 3…"""


class ChatEvent(RunEventBase):
    """`chat.event`: the answer as it grows, then exactly one of final/aborted/error."""

    state: ChatState
    message: EventMessage | None = None
    delta: str | None = None
    """`delta` only: the part new since the previous delta."""
    usage: RunUsage | None = None
    """`final` only."""
    error_message: str | None = None
    """`error` only."""


class AgentEvent(RunEventBase):
    """`agent.event`: `lifecycle` (phase start/end/error/aborted), `assistant` (text so far
    and the new part), `tool` (start/result/error of one call), `error`."""

    stream: AgentStream
    data: dict[str, JsonValue]


CHAT_EVENT = "chat.event"
AGENT_EVENT = "agent.event"
