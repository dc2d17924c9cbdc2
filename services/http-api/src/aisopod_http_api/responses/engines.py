"""Where a response's output comes from: an agent turn, or a provider's chat stream.

Both give the same steps (text deltas, function calls and their argument fragments, one
`Finished`). `start()` raises before any output when the work cannot begin (unknown model,
the runtime or provider refusing), so such failures are plain HTTP errors; failures after
it end the response as `failed`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from aisopod import tracing
from aisopod_http_api.agentoptions import OutputFormat
from aisopod_http_api.agentturn import AgentTurns, Delta, Ended, Started, TurnRequest, Usage
from aisopod_http_api.errors import GatewayTimeout, UpstreamError
from aisopod_http_api.proxy import ChatProxy
from aisopod_http_api.sse import SseReader
from aisopod_http_api.upstream.connection import Exchange, UpstreamClosed, UpstreamTimeout
from aisopod_http_api.upstream.targets import ProviderTarget


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    index: int
    call_id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallArgs:
    index: int
    delta: str


@dataclass(frozen=True, slots=True)
class Finished:
    usage: Usage
    reason: str  # stop | length | tool_calls


Step = TextDelta | CallStart | CallArgs | Finished


class Engine(Protocol):
    async def start(self) -> None: ...

    def steps(self) -> AsyncIterator[Step]: ...

    async def close(self) -> None: ...


class AgentEngine:
    def __init__(
        self, turns: AgentTurns, turn: TurnRequest, output: OutputFormat | None = None
    ) -> None:
        self._updates = turns.run(turn)
        self.output = output or OutputFormat()

    async def start(self) -> None:
        first = await anext(self._updates)
        assert isinstance(first, Started)

    async def steps(self) -> AsyncIterator[Step]:
        async for update in self._updates:
            if isinstance(update, Delta):
                yield TextDelta(update.text)
            elif isinstance(update, Ended):
                self.output.check(update.text)
                yield Finished(update.usage, "stop")

    async def close(self) -> None:
        await self._updates.aclose()


class ProviderEngine:
    def __init__(
        self, proxy: ChatProxy, target: ProviderTarget, request: dict[str, Any], request_id: str
    ) -> None:
        self.proxy = proxy
        self.target = target
        self.request = request
        self.request_id = request_id
        self._exchange: Exchange | None = None

    async def start(self) -> None:
        trace = tracing.current.get()  # the provider continues the request's trace
        raw = self.target.request(
            orjson.dumps(self.request), self.request_id, trace.traceparent if trace else None
        )
        exchange = await self.proxy.open(self.target, raw)
        self._exchange = exchange
        if exchange.status >= 400:
            raise await self.proxy.failure(exchange, self.target)

    async def steps(self) -> AsyncIterator[Step]:
        assert self._exchange is not None
        reader = SseReader()
        usage = Usage()
        reason = "stop"
        calls: dict[int, str] = {}
        while True:
            self._exchange.expire_in(self.target.timeout_s)  # the longest silence allowed
            try:
                chunk = await self._exchange.read()
            except UpstreamTimeout:
                raise GatewayTimeout(
                    f"{self.target.provider_id} stopped streaming", openaiCode="upstream_timeout"
                ) from None
            except UpstreamClosed as exc:
                raise UpstreamError(
                    f"{self.target.provider_id} broke the stream: {exc}",
                    openaiCode="upstream_error",
                ) from None
            if not chunk:
                break
            for event in reader.feed(chunk):
                if event.data == "[DONE]":
                    yield Finished(usage, reason)
                    return
                data = _json(event.data)
                if "error" in data:
                    message = str((data.get("error") or {}).get("message") or "upstream error")
                    raise UpstreamError(message, openaiCode="upstream_error")
                if isinstance(data.get("usage"), dict):
                    usage = Usage(
                        int(data["usage"].get("prompt_tokens") or 0),
                        int(data["usage"].get("completion_tokens") or 0),
                    )
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        yield TextDelta(str(delta["content"]))
                    for call in delta.get("tool_calls") or []:
                        for step in _call_steps(call, calls):
                            yield step
                    if choice.get("finish_reason"):
                        reason = str(choice["finish_reason"])
        yield Finished(usage, reason)

    async def close(self) -> None:
        if self._exchange is not None and not self._exchange.complete:
            self._exchange.abort()


def _json(text: str) -> dict[str, Any]:
    with contextlib.suppress(orjson.JSONDecodeError):
        value = orjson.loads(text)
        if isinstance(value, dict):
            return value
    raise UpstreamError("the provider sent an unreadable stream", openaiCode="upstream_error")


def _call_steps(call: dict[str, Any], calls: dict[int, str]) -> list[Step]:
    index = int(call.get("index", 0))
    function = call.get("function") or {}
    steps: list[Step] = []
    if index not in calls:
        name = function.get("name")
        if not name:
            raise UpstreamError("a tool call without a name", openaiCode="upstream_error")
        calls[index] = str(name)
        steps.append(CallStart(index, str(call.get("id") or f"call_{index}"), str(name)))
    if function.get("arguments"):
        steps.append(CallArgs(index, str(function["arguments"])))
    return steps
