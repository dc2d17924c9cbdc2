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
)
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
    error: str | None = None


class ChatAbortParams(Params):
    session_key: SessionKey
    run_id: Ident | None = None


class ChatAbortResult(Result):
    aborted: bool
    run_ids: list[str]


class ChatHistoryParams(Params):
    session_key: SessionKey
    limit: int = Field(default=200, ge=1, le=1000)


class ChatMessage(Result):
    id: str
    role: Literal["user", "assistant", "system", "tool"]
    content: str | list[dict[str, JsonValue]]
    ts: EpochMs
    label: str | None = None
    run_id: str | None = None
    """The run that asked or answered it (absent for injected messages)."""


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
