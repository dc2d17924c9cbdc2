"""What every model provider speaks: a request in, a stream of events out.

Messages and tool declarations use the OpenAI Chat Completions shapes (the lingua franca
of the upstreams we target), so the `openai` kind forwards them untouched. A stream
yields `TextDelta`s as they come, then one `ToolCalls` (when the model asked for tools),
then exactly one `Finish`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aisopod.catalogue.run_events import RunUsage

ErrorKind = Literal["http", "timeout", "connection", "cut", "protocol", "config"]


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    """The provider-local model id (`gpt-4o`, not `openai/gpt-4o`)."""
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """JSON text as the model produced it (may be invalid; the caller decides)."""


@dataclass(frozen=True, slots=True)
class ToolCalls:
    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of model calls. `prompt_tokens` counts every input token; the cache counts
    are the parts of it the provider read from or wrote to its prompt cache."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    calls: int = 0
    """Model calls that reported usage."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.calls + other.calls,
        )

    def event(self) -> RunUsage:
        """As a run's final `chat.event` carries it."""
        return RunUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.total_tokens,
            cache_read_tokens=self.cache_read_tokens or None,
            cache_write_tokens=self.cache_write_tokens or None,
        )

    def wire(self) -> dict[str, int]:
        out = {
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
            "totalTokens": self.total_tokens,
        }
        if self.cache_read_tokens:
            out["cacheReadTokens"] = self.cache_read_tokens
        if self.cache_write_tokens:
            out["cacheWriteTokens"] = self.cache_write_tokens
        return out


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str
    usage: Usage | None = None


StreamEvent = TextDelta | ToolCalls | Finish


class ProviderError(Exception):
    """The upstream failed; `kind` says how, `status` is the HTTP status when there was one."""

    def __init__(
        self, message: str, *, kind: ErrorKind, status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status
        self.attempts = attempts


class ProviderUnavailable(ProviderError):
    """The provider is configured but cannot be used: its entry fails validation or its
    client cannot be built from it. `reason` says why, for the operator to fix."""

    def __init__(self, provider_id: str, reason: str) -> None:
        super().__init__(f"provider {provider_id!r} is unavailable: {reason}", kind="config")
        self.provider_id = provider_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DiscoveredModel:
    id: str
    context_window: int | None = None


class Provider(Protocol):
    id: str

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """The model's answer as events; raises ProviderError."""
        ...

    async def list_models(self) -> list[DiscoveredModel]:
        """What the upstream says it serves (`/models`); may raise ProviderError."""
        ...

    async def close(self) -> None: ...
