"""Constrained field types shared by the catalogue's params and result models.

Pure: no I/O. Limits here are the edge's first line of defence; owners may check more
(an agent that does not exist is NOT_FOUND, not INVALID_PARAMS).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from aisopod.wire import Params, Result

MIB = 1024 * 1024

# Lengths are in characters; the frame limit (maxPayload, 1 MiB) bounds the bytes anyway.
# The pattern `\S` is unanchored: the text must contain at least one non-space character.
Message = Annotated[str, StringConstraints(min_length=1, max_length=MIB, pattern=r"\S")]

# Session keys are opaque ("agent:main:main"); no whitespace or control characters, so a key
# can be logged and used in a stream subject without quoting.
SessionKey = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s\x00-\x1f\x7f]+$")
]

# Agent ids appear in model names (`aisopod/<agentId>`) and session keys.
AgentId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
]

# Node ids become one NATS subject token (`node.<nodeId>.invoke`): no dots or wildcards.
NodeId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_:-]+$")
]

# Device id = sha256 hex of the raw Ed25519 public key (docs/protocol/websocket.md, handshake).
DeviceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

# Server-issued identifiers (run, job, request, approval ids): opaque, bounded.
Ident = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\x00-\x1f\x7f]+$")
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ModelRef = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
# Secrets and tokens: bounded, never validated further here (auth compares them).
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]

# Milliseconds. A day is far beyond any sane wait and keeps timers within int ranges.
TimeoutMs = Annotated[int, Field(ge=1, le=86_400_000)]
EpochMs = Annotated[int, Field(ge=0)]

# Base hash of the config document, as returned by config.get; its format is the owner's.
ConfigHash = Annotated[str, StringConstraints(min_length=1, max_length=128)]

# Event name or subscription pattern (`chat.*`, `exec.approval.>`).
EventPattern = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.*>-]+$")
]

ToolName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
]
CommandName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\x00-\x1f\x7f]+$")
]

RunStatus = Literal["ok", "error", "aborted", "timeout"]


def _is_none(value: object) -> bool:
    return value is None


def absent_when_none() -> Any:
    """An optional result field that is left out of the wire form when None (rather than
    sent as null): for replies whose fields appear only in some states."""
    return Field(default=None, exclude_if=_is_none)


class IdempotentParams(Params):
    """Params of a side-effecting method marked (idem): a repeat within 5 min returns the
    first result; a repeat while the first is in flight is CONFLICT."""

    idempotency_key: IdempotencyKey | None = None


class PatchParams(Params):
    """Params where an explicit null clears a field: omitted and null differ, so the wire
    form (`WireModel.wire`) keeps exactly the fields the caller set, nulls included."""


class OkResult(Result):
    """`{ok}`."""

    ok: bool = True
