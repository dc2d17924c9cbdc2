"""chat: send to a session, abort, history and injected assistant messages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints

from aisopod.catalogue.fields import (
    MIB,
    EpochMs,
    IdempotentParams,
    Ident,
    Label,
    Message,
    SessionKey,
    TimeoutMs,
    absent_when_none,
)
from aisopod.catalogue.run_events import RunUsage
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

R, W, A = Requirement.READ, Requirement.WRITE, Requirement.ADMIN
RT = ServiceName.RUNTIME


class Attachment(Params):
    """A file sent along with a message, base64 in `content`."""

    mime_type: Annotated[
        str, StringConstraints(min_length=3, max_length=200, pattern=r"^[\w.+-]+/[\w.+-]+$")
    ]
    content: Annotated[str, StringConstraints(min_length=1, max_length=MIB)]
    file_name: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class ChatSendParams(IdempotentParams):
    session_key: SessionKey
    message: Message
    attachments: list[Attachment] | None = Field(default=None, max_length=16)
    timeout_ms: TimeoutMs | None = None


class ChatSendResult(Result):
    """`started`, or `in_flight` when the run waits for the session. A repeat with the same
    idempotency key reports the run as it is now: `in_flight`/`started` while it is queued
    or running, else how it ended (`ok`, `error` with `error`, `aborted`, `timeout`)."""

    run_id: str
    status: Literal["started", "in_flight", "ok", "error", "aborted", "timeout"]
    error: str | None = absent_when_none()


class ChatAbortParams(Params):
    session_key: SessionKey
    run_id: Ident | None = None


class ChatAbortResult(Result):
    aborted: bool
    run_ids: list[str]


class ChatHistoryParams(Params):
    session_key: SessionKey
    limit: int = Field(default=200, ge=1, le=1000)


class ToolCallRecord(Result):
    """One tool call an assistant message asked for (`args` as the model gave them)."""

    id: str
    name: str
    args: dict[str, JsonValue]


class CompactionRecord(Result):
    """On the transcript entry a compaction wrote (role `system`, the summary as its
    content): what it replaced. The model, and `chat.history`, see this entry first and
    then only the messages after `lastCompactedId`; the older ones stay in the stream."""

    last_compacted_id: str
    """The newest message the summary covers."""
    compacted_messages: int
    kept_messages: int
    tokens_before: int
    """Estimated tokens of what the model was sent before (about 4 characters a token)."""
    tokens_after: int
    auto: bool
    """Made by a run because the session neared its model's context window."""
    model: str


class ChatMessage(Result):
    """A transcript message. Which optional fields it has depends on how it was written:
    a run's messages carry `runId`; a final answer `model` and `usage`; an answer that asked
    for tools `toolCalls`; a tool's output `toolCallId`/`toolName`; the partial text (maybe
    empty) of a run that did not finish `stopReason` and `error`; chat.inject's `injected`
    (and its `label`)."""

    id: str
    role: Literal["user", "assistant", "system", "tool"]
    content: str | list[dict[str, JsonValue]]
    ts: EpochMs
    label: str | None = None
    run_id: str | None = absent_when_none()
    model: str | None = absent_when_none()
    usage: RunUsage | None = absent_when_none()
    tool_calls: list[ToolCallRecord] | None = absent_when_none()
    tool_call_id: str | None = absent_when_none()
    tool_name: str | None = absent_when_none()
    stop_reason: str | None = absent_when_none()
    error: str | None = absent_when_none()
    """Why the run behind a `stopReason` entry failed."""
    injected: bool | None = absent_when_none()
    compaction: CompactionRecord | None = absent_when_none()


class ChatHistoryResult(Result):
    session_key: str
    messages: list[ChatMessage]


class ChatInjectParams(Params):
    session_key: SessionKey
    message: Message
    label: Label | None = None


class ChatInjectResult(Result):
    message_id: str


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "chat.send",
        RT,
        W,
        ChatSendParams,
        ChatSendResult,
        idempotent=True,
        description="send a message; output as chat.event and agent.event",
    ),
    MethodSpec("chat.abort", RT, W, ChatAbortParams, ChatAbortResult, description="abort runs"),
    MethodSpec(
        "chat.history", RT, R, ChatHistoryParams, ChatHistoryResult, description="transcript"
    ),
    MethodSpec(
        "chat.inject",
        RT,
        A,
        ChatInjectParams,
        ChatInjectResult,
        description="append an assistant message and broadcast it",
    ),
)
