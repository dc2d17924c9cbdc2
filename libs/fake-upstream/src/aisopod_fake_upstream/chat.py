"""`POST /v1/chat/completions`: validate, record, pick the behaviour, answer or misbehave."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
from typing import Any

import orjson

from .answer import parse_last_user, plan_reply
from .behaviour import PLAIN, Behaviour, behaviour_from_fields, behaviour_from_headers
from .config import FakeUpstreamConfig
from .directives import ParsedMessage
from .errors import OpenAIError, error_response
from .http11 import Request, Response, ResponseWriter, Streamer
from .render import Envelope, completion_body, stream_events, usage_of
from .request import ChatRequest, parse_chat_request
from .state import UpstreamState

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
DEFAULT_FAILURE_STATUS = 500


class ChatCompletions:
    def __init__(self, config: FakeUpstreamConfig, state: UpstreamState) -> None:
        self._config = config
        self._state = state
        self._request_ids = itertools.count(1)

    def handle(self, request: Request) -> Response | Streamer:
        behaviour = PLAIN
        try:
            try:
                body = orjson.loads(request.body)
            except orjson.JSONDecodeError as exc:
                raise OpenAIError(400, "We could not parse the JSON body of your request.") from exc
            recorded = self._state.record(request.path, request.headers, body)
            chat = parse_chat_request(body)
            if self._config.strict_models and chat.model not in self._config.models:
                raise OpenAIError(
                    404,
                    f"The model `{chat.model}` does not exist or you do not have access to it.",
                    param="model",
                    code="model_not_found",
                )
            raw, parsed = parse_last_user(chat)
            behaviour = self._behaviour(raw, parsed, request.headers)
            self._fail_if_asked(behaviour, raw)
            response, usage = self._answer(chat, parsed, behaviour)
            recorded["usage"] = usage
        except OpenAIError as error:
            response = error_response(error)
        if behaviour.is_immediate:
            return response
        return functools.partial(self._play, response, behaviour)

    def _behaviour(self, raw: str, parsed: ParsedMessage, headers: dict[str, str]) -> Behaviour:
        behaviour = self._state.take_rule(raw) or PLAIN
        behaviour = behaviour.overridden_by(behaviour_from_headers(headers))
        if parsed.fake_fields:
            behaviour = behaviour.overridden_by(
                behaviour_from_fields(parsed.fake_fields, "[[fake:...]] directive")
            )
        return behaviour

    def _fail_if_asked(self, behaviour: Behaviour, key: str) -> None:
        status = behaviour.status
        if status is None and behaviour.fail_times is not None:
            status = DEFAULT_FAILURE_STATUS
        if status is None:
            return
        detail = ""
        if behaviour.fail_times is not None:
            attempt = self._state.count_attempt(key)
            if attempt > behaviour.fail_times:
                return
            detail = f" (attempt {attempt} of {behaviour.fail_times} failing)"
        headers: tuple[tuple[str, str], ...] = ()
        if behaviour.retry_after is not None:
            headers = (("retry-after", _seconds(behaviour.retry_after)),)
        message = f"fake upstream: simulated {status} error{detail}"
        raise OpenAIError(status, message, headers=headers)

    def _answer(
        self, chat: ChatRequest, parsed: ParsedMessage, behaviour: Behaviour
    ) -> tuple[Response, dict[str, Any] | None]:
        """The response, and the usage it reports (None: a stream asked for none)."""
        reply = plan_reply(chat, parsed, behaviour.words, behaviour.json_reply)
        cached = min(behaviour.cached_tokens or 0, reply.prompt_tokens)
        written = min(behaviour.cache_write_tokens or 0, reply.prompt_tokens - cached)
        reply = dataclasses.replace(reply, cached_tokens=cached, cache_write_tokens=written)
        envelope = Envelope.new(chat.model)
        request_id = ("x-request-id", f"req_fake_{next(self._request_ids)}")
        if chat.stream:
            response = Response(
                200,
                content_type=SSE_CONTENT_TYPE,
                headers=(request_id, ("cache-control", "no-cache")),
                events=stream_events(reply, envelope, chat.include_usage),
            )
            return response, usage_of(reply) if chat.include_usage else None
        body = completion_body(reply, envelope)
        return Response(200, body, headers=(request_id,)), usage_of(reply)

    async def _play(self, response: Response, behaviour: Behaviour, writer: ResponseWriter) -> None:
        # Counted so tests can check that a client going away stops the stream here.
        self._state.active_responses += 1
        try:
            await play(response, behaviour, writer)
        except (asyncio.CancelledError, ConnectionResetError):
            self._state.client_disconnects += 1
            raise
        finally:
            self._state.active_responses -= 1


async def play(response: Response, behaviour: Behaviour, writer: ResponseWriter) -> None:
    """Send `response` with the behaviour's delays and connection breakage."""
    if behaviour.delay_ms:
        await asyncio.sleep(behaviour.delay_ms / 1000)
    if behaviour.drop:
        writer.cut()
        return
    cut_after = behaviour.cut_after
    if response.events is None:
        if cut_after is None:
            await writer.respond(response)
            return
        await writer.send_head(
            response.status, response.content_type, response.headers, length=len(response.body)
        )
        await writer.send(response.body[:cut_after])
        writer.cut()
        return
    await writer.send_head(response.status, response.content_type, response.headers)
    for index, event in enumerate(response.events):
        if cut_after is not None and index >= cut_after:
            writer.cut()
            return
        if index and behaviour.chunk_delay_ms:
            await asyncio.sleep(behaviour.chunk_delay_ms / 1000)
        await writer.send(event)
    await writer.finish()


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"
