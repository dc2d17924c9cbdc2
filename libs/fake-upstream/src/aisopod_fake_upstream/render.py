"""A planned `Reply` as OpenAI wire bytes: one `chat.completion`, or SSE chunk events.

Stream shape (as OpenAI sends it): a first chunk with `delta.role`; then content deltas, or
per tool call one chunk with its id, type, name and empty arguments followed by argument
fragments; a last chunk with an empty delta and `finish_reason`; with
`stream_options.include_usage` every chunk carries `"usage": null` and a final chunk with
`choices: []` carries the usage; then `data: [DONE]`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from .answer import Reply

DONE_EVENT = b"data: [DONE]\n\n"
_ARGUMENT_FRAGMENT = 16


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every object of one completion shares."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> Envelope:
        return cls(id=f"chatcmpl-{secrets.token_hex(12)}", created=int(time.time()), model=model)


def usage_of(reply: Reply) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }
    if reply.cached_tokens or reply.cache_write_tokens:
        # OpenAI's place for cache reads; OpenRouter's for cache writes.
        usage["prompt_tokens_details"] = {
            "cached_tokens": reply.cached_tokens,
            "cache_write_tokens": reply.cache_write_tokens,
        }
    return usage


def completion_body(reply: Reply, envelope: Envelope) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in reply.tool_calls
        ]
    return orjson.dumps(
        {
            "id": envelope.id,
            "object": "chat.completion",
            "created": envelope.created,
            "model": envelope.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage_of(reply),
        }
    )


def stream_events(reply: Reply, envelope: Envelope, include_usage: bool) -> list[bytes]:
    """Every SSE event of the stream, `data: [DONE]` included, one bytes object each."""
    head = {
        "id": envelope.id,
        "object": "chat.completion.chunk",
        "created": envelope.created,
        "model": envelope.model,
    }
    if include_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    events: list[bytes] = []
    if reply.tool_calls:
        events.append(chunk({"role": "assistant", "content": None, "refusal": None}))
        for index, call in enumerate(reply.tool_calls):
            opening = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [opening]}))
            for start in range(0, len(call.arguments), _ARGUMENT_FRAGMENT):
                fragment = call.arguments[start : start + _ARGUMENT_FRAGMENT]
                events.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                )
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        events.extend(chunk({"content": piece}) for piece in reply.pieces)
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        final = {**head, "choices": [], "usage": usage_of(reply)}
        events.append(b"data: " + orjson.dumps(final) + b"\n\n")
    events.append(DONE_EVENT)
    return events
