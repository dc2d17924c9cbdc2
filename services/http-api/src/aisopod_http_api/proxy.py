"""The chat completions fast path: a provider model's request goes straight to the provider.

The body is re-serialised once (the `model` becomes the provider's own id); the response
bytes, streamed or not, go to the client exactly as the provider sent them: no parsing,
no per-chunk work, so usage chunks and tool calls pass untouched. A client that goes away
closes the upstream connection, which cancels the provider's work.

Failures (docs/protocol/http.md): the provider unreachable, broken before the head, 5xx → 502
`upstream_error` (after `maxRetries` attempts when nothing was sent yet); no head within
`timeoutS` → 504 `timeout`; 401/403 (our provider key refused) → 502, never passed on as the
client's own auth failure; other 4xx pass through in the OpenAI shape, 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.types import Receive, Send

from aisopod import tracing
from aisopod.errors import AisopodError, InvalidParams, NotFound, RateLimited
from aisopod_http_api import rawio
from aisopod_http_api.errors import GatewayTimeout, HttpStatusError, UpstreamError
from aisopod_http_api.upstream.connection import Exchange, UpstreamClosed, UpstreamTimeout
from aisopod_http_api.upstream.pool import UpstreamConnectError, UpstreamPool
from aisopod_http_api.upstream.targets import ProviderTarget

log = logging.getLogger("aisopod.http_api.proxy")

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_ERROR_BYTES = 1024 * 1024
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


WATCH_AFTER_S = 0.05


class ClientGone:
    """Watches `receive` for the client's disconnect; aborts the current upstream exchange.

    The watching task starts only once the request has run `WATCH_AFTER_S`: most proxied
    requests are done sooner, and a timer handle costs a fraction of a task.
    """

    def __init__(self, receive: Receive) -> None:
        self.gone = False
        self.exchange: Exchange | None = None
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            WATCH_AFTER_S, self._start
        )

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(self._watch(self._receive))

    async def _watch(self, receive: Receive) -> None:
        await rawio.wait_disconnect(receive)
        self.gone = True
        if self.exchange is not None:
            self.exchange.abort()

    def attach(self, exchange: Exchange) -> None:
        self.exchange = exchange
        if self.gone:
            exchange.abort()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()


def _span(target: ProviderTarget) -> tracing.Span | None:
    """The provider call's client span (aisopod.tracing), under the request's."""
    return tracing.start(
        f"chat {target.model}",
        kind=tracing.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": target.model,
            "aisopod.provider": target.provider_id,
        },
    )


class ChatProxy:
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    async def forward(
        self,
        path: str,
        receive: Receive,
        send: Send,
        payload: dict[str, Any],
        target: ProviderTarget,
        request_id: str,
    ) -> None:
        payload["model"] = target.model
        span = _span(target) if tracing.ON else None
        traceparent = span.traceparent if span is not None else None
        request = target.request(orjson.dumps(payload), request_id, traceparent)
        watcher = ClientGone(receive)
        failure: str | None = None
        try:
            exchange = await self.open(target, request, watcher)
            if exchange.status >= 400:
                raise await self.failure(exchange, target)
            elif payload.get("stream") is True:
                await self._relay_stream(send, exchange, target, watcher)
            else:
                await self._relay_body(send, exchange, target)
        except AisopodError as exc:
            failure = exc.message
            if not watcher.gone:
                await rawio.send_error(send, path, exc)
        finally:
            watcher.close()
            if watcher.exchange is not None and not watcher.exchange.complete:
                watcher.exchange.abort()
            if span is not None:
                span.end(failure)

    async def open(
        self, target: ProviderTarget, request: bytes, watcher: ClientGone | None = None
    ) -> Exchange:
        """The response head, retrying provider failures while nothing was sent."""
        attempts = target.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                exchange = await self.pool.send(
                    target.origin,
                    request,
                    watcher.attach if watcher else None,
                    target.timeout_s,
                )
            except UpstreamTimeout:
                raise GatewayTimeout(
                    f"{target.provider_id} did not answer within {target.timeout_s:g}s",
                    openaiCode="upstream_timeout",
                ) from None
            except (UpstreamConnectError, UpstreamClosed) as exc:
                if last or (watcher is not None and watcher.gone):
                    raise UpstreamError(
                        f"{target.provider_id} failed: {exc}", openaiCode="upstream_error"
                    ) from None
            else:
                if exchange.status not in _RETRY_STATUSES or last:
                    return exchange
                exchange.abort()
            await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
        raise AssertionError("unreachable")

    async def _relay_body(self, send: Send, exchange: Exchange, target: ProviderTarget) -> None:
        exchange.expire_in(target.timeout_s)
        try:
            body = await exchange.read_all(MAX_RESPONSE_BYTES)
        except UpstreamTimeout:
            raise GatewayTimeout(
                f"{target.provider_id} did not finish within {target.timeout_s:g}s",
                openaiCode="upstream_timeout",
            ) from None
        except UpstreamClosed as exc:
            raise UpstreamError(
                f"{target.provider_id} broke the response: {exc}", openaiCode="upstream_error"
            ) from None
        content_type = exchange.header(b"content-type") or rawio.JSON
        await rawio.send_bytes(send, exchange.status, body, content_type)

    async def _relay_stream(
        self, send: Send, exchange: Exchange, target: ProviderTarget, watcher: ClientGone
    ) -> None:
        content_type = exchange.header(b"content-type") or rawio.SSE
        await rawio.start_stream(
            send,
            exchange.status,
            ((b"content-type", content_type), (b"cache-control", b"no-cache")),
        )
        tail = b"\n\n"
        try:
            while True:
                exchange.expire_in(target.timeout_s)  # the longest silence allowed
                chunk = await exchange.read_some()
                if not chunk:
                    break
                if exchange.complete:  # the last bytes and the stream's end in one write
                    await send({"type": "http.response.body", "body": chunk, "more_body": False})
                    return
                await rawio.stream_chunk(send, chunk)
                tail = chunk[-2:]
        except (UpstreamTimeout, UpstreamClosed) as exc:
            if watcher.gone:
                return
            if tail != b"\n\n":
                # Cut mid-event: only a broken stream tells the client the truth, so the
                # response is left unfinished and the server closes the connection.
                log.warning("%s cut a stream mid-event: %s", target.provider_id, exc)
                return
            kind = "timed out" if isinstance(exc, UpstreamTimeout) else "broke the stream"
            error = orjson.dumps(
                {
                    "error": {
                        "message": f"{target.provider_id} {kind}",
                        "type": "upstream_error",
                        "param": None,
                        "code": "upstream_error",
                    }
                }
            )
            await rawio.stream_chunk(send, b"data: " + error + b"\n\n")
        await rawio.end_stream(send)

    async def failure(self, exchange: Exchange, target: ProviderTarget) -> AisopodError:
        """The error to answer for a provider's error response (its body read here)."""
        status = exchange.status
        body = b""
        exchange.expire_in(target.timeout_s)
        with contextlib.suppress(UpstreamTimeout, UpstreamClosed):
            body = await exchange.read_all(MAX_ERROR_BYTES)
        message, code, param = _upstream_error_fields(body)
        name = target.provider_id
        if status in (401, 403):
            return UpstreamError(
                f"{name} refused the gateway's credentials ({status}): {message}",
                openaiCode="upstream_error",
            )
        if status >= 500:
            return UpstreamError(
                f"{name} failed with {status}: {message}", openaiCode="upstream_error"
            )
        if status == 429:
            retry = exchange.header(b"retry-after")
            seconds = _seconds(retry) if retry else 1.0
            return RateLimited(
                f"{name} is rate limiting: {message}",
                retryAfterMs=int(seconds * 1000),
                openaiCode=code or "rate_limit_exceeded",
            )
        if status == 404:
            return NotFound(message, openaiCode=code or "not_found", param=param)
        if status == 400:
            return InvalidParams(message, openaiCode=code or "invalid_request", param=param)
        error = HttpStatusError(status, message)
        error.data.update(openaiCode=code or "upstream_error", param=param)
        return error


def _upstream_error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        message = str(error.get("message") or "no message")
        code = error.get("code")
        param = error.get("param")
        return message, str(code) if code else None, str(param) if param else None
    text = body[:200].decode("utf-8", "replace").strip()
    return text or "no message", None, None


def _seconds(value: bytes) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0
