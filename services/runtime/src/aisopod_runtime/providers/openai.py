"""The `openai` provider kind: any OpenAI-compatible Chat Completions server.

One pooled `httpx.AsyncClient` per provider. Requests always stream (SSE) with usage.
Failures before the first byte of a response — 429, 5xx, connection errors, timeouts —
are retried up to `maxRetries` times with exponential backoff (honouring `Retry-After`);
once a 200 has started streaming nothing is retried, since part of the answer is already
out. `timeoutS` bounds connecting and every wait for the next chunk.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from aisopod import tracing
from aisopod.config.sections.providers import ProviderConfig
from aisopod_runtime.providers.base import (
    DiscoveredModel,
    Finish,
    ModelRequest,
    ProviderError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCalls,
    Usage,
)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 8.0
RETRY_AFTER_MAX_S = 30.0
_ERROR_BODY_LIMIT = 64 * 1024


class OpenAIProvider:
    def __init__(
        self, config: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        if not config.base_url:
            raise ProviderError(f"provider {config.id}: baseUrl is required", kind="config")
        self.id = config.id
        self.max_retries = config.max_retries
        headers = {
            "Accept": "application/json",
            **{name: value.get_secret_value() for name, value in config.headers.items()},
        }
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 10.0)),
            limits=httpx.Limits(
                max_connections=128, max_keepalive_connections=32, keepalive_expiry=30.0
            ),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """The answer's events. Tracing on, the call is a client span (aisopod.tracing)
        whose `traceparent` the provider is sent."""
        if not tracing.ON:
            return self._stream(request, None)
        span = tracing.start(
            f"chat {request.model}",
            kind=tracing.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": request.model,
                "aisopod.provider": self.id,
                "server.address": self._client.base_url.host,
            },
        )
        if span is None:
            return self._stream(request, None)
        return tracing.spanning(span, self._stream(request, span.traceparent))

    async def _stream(
        self, request: ModelRequest, traceparent: str | None
    ) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools:
            body["tools"] = request.tools
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        response = await self._open(body, traceparent)
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignores `stream`: one JSON completion.
                async for event in _from_completion(await _read_json(response)):
                    yield event
                return
            async for event in _from_sse(response):
                yield event
        finally:
            await response.aclose()

    async def _open(self, body: dict[str, Any], traceparent: str | None = None) -> httpx.Response:
        """A 200 response whose body is not read yet, after retries; or ProviderError."""
        payload = orjson.dumps(body)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if traceparent is not None:
            headers[tracing.TRACEPARENT] = traceparent
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                request = self._client.build_request(
                    "POST", "chat/completions", content=payload, headers=headers
                )
                response = await self._client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                error = ProviderError(
                    f"{self.id}: no response in time ({type(exc).__name__})",
                    kind="timeout",
                    attempts=attempt,
                )
            except httpx.TransportError as exc:
                error = ProviderError(
                    f"{self.id}: connection failed ({type(exc).__name__}: {exc})",
                    kind="connection",
                    attempts=attempt,
                )
            else:
                if response.status_code == 200:
                    return response
                error = await _http_error(self.id, response, attempt)
                retry_after = _retry_after(response)
                if response.status_code not in RETRY_STATUSES:
                    raise error
            if attempt > self.max_retries:
                raise error
            await asyncio.sleep(backoff(attempt, retry_after))

    async def list_models(self) -> list[DiscoveredModel]:
        try:
            response = await self._client.get("models", timeout=5.0)
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.id}: /models failed: {exc}", kind="connection") from exc
        if response.status_code != 200:
            raise await _http_error(self.id, response, 1)
        try:
            data = response.json().get("data", [])
        except ValueError as exc:
            raise ProviderError(f"{self.id}: /models is not JSON", kind="protocol") from exc
        out = []
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                window = item.get("context_window") or item.get("context_length")
                out.append(DiscoveredModel(item["id"], window if isinstance(window, int) else None))
        return out


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's word, else exponential."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_MAX_S)
    delay = min(BACKOFF_BASE_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
    return delay * random.uniform(0.8, 1.2)  # jitter: replicas must not retry in step


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: rare for APIs; fall back to our own backoff


async def _http_error(provider: str, response: httpx.Response, attempt: int) -> ProviderError:
    raw = b""
    try:
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > _ERROR_BODY_LIMIT:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    detail = ""
    try:
        error = orjson.loads(raw).get("error")
        detail = error.get("message", "") if isinstance(error, dict) else str(error or "")
    except (ValueError, AttributeError):
        detail = raw[:200].decode(errors="replace")
    message = f"{provider}: upstream answered {response.status_code}"
    return ProviderError(
        f"{message}: {detail}" if detail else message,
        kind="http",
        status=response.status_code,
        attempts=attempt,
    )


async def _read_json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(await response.aread())
    except httpx.HTTPError as exc:
        raise ProviderError(f"the upstream broke off: {exc}", kind="cut") from exc
    except ValueError as exc:
        raise ProviderError("the upstream sent invalid JSON", kind="protocol") from exc
    if not isinstance(body, dict):
        raise ProviderError("the upstream sent an unexpected body", kind="protocol")
    return body


async def _from_completion(body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    if message.get("content"):
        yield TextDelta(message["content"])
    calls = tuple(
        ToolCall(c.get("id", ""), c["function"]["name"], c["function"].get("arguments") or "{}")
        for c in message.get("tool_calls") or ()
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    )
    if calls:
        yield ToolCalls(calls)
    yield Finish(choice.get("finish_reason") or "stop", _usage(body.get("usage")))


async def _from_sse(response: httpx.Response) -> AsyncIterator[StreamEvent]:
    builders: dict[int, dict[str, str]] = {}
    finish: str | None = None
    usage: Usage | None = None
    done = False
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, `event:` lines, keep-alives
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = orjson.loads(data)
            except ValueError as exc:
                raise ProviderError("the upstream sent invalid JSON", kind="protocol") from exc
            if isinstance(chunk.get("error"), dict):
                message = chunk["error"].get("message") or "error"
                raise ProviderError(f"upstream error mid-stream: {message}", kind="protocol")
            usage = _usage(chunk.get("usage")) or usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                for part in delta.get("tool_calls") or ():
                    _add_tool_fragment(builders, part)
                finish = choice.get("finish_reason") or finish
    except httpx.TimeoutException as exc:
        raise ProviderError("the upstream stalled mid-stream", kind="timeout") from exc
    except httpx.HTTPError as exc:
        raise ProviderError(
            f"the upstream cut the stream ({type(exc).__name__})", kind="cut"
        ) from exc
    if not done and finish is None:
        raise ProviderError("the upstream stream ended early", kind="cut")
    if builders:
        yield ToolCalls(
            tuple(
                ToolCall(b["id"], b["name"], b["arguments"] or "{}")
                for _, b in sorted(builders.items())
            )
        )
    yield Finish(finish or "stop", usage)


def _add_tool_fragment(builders: dict[int, dict[str, str]], part: dict[str, Any]) -> None:
    index = part.get("index", 0)
    builder = builders.setdefault(index, {"id": "", "name": "", "arguments": ""})
    if part.get("id"):
        builder["id"] = part["id"]
    function = part.get("function") or {}
    if function.get("name"):
        builder["name"] += function["name"]
    if function.get("arguments"):
        builder["arguments"] += function["arguments"]


def _usage(raw: Any) -> Usage | None:
    """The usage a response reports. Cache counts: OpenAI's (and vLLM's, OpenRouter's)
    `prompt_tokens_details.cached_tokens` / `cache_write_tokens`, or Anthropic-style
    `cache_read_input_tokens` / `cache_creation_input_tokens` at the top level."""
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    prompt = _count(raw.get("prompt_tokens"))
    read = _count(details.get("cached_tokens")) or _count(raw.get("cache_read_input_tokens"))
    write = _count(details.get("cache_write_tokens")) or _count(
        raw.get("cache_creation_input_tokens")
    )
    read = min(read, prompt)
    return Usage(
        prompt,
        _count(raw.get("completion_tokens")),
        read,
        min(write, prompt - read),
        1,
    )


def _count(value: Any) -> int:
    """A token count as reported; anything not a non-negative number counts 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return 0
    return int(value)
