"""The deterministic answer to a chat request (no I/O).

Rules, in order:
1. The conversation ends with `tool` messages: answer `tool NAME returned: CONTENT` for each
   trailing tool result (joined by `; `), NAME taken from the assistant tool call it answers.
2. The request declares `tools` and the last user message holds `[[tool:NAME {args}]]`
   directives (and is the last message): answer with those tool calls.
3. Summary: the last message is the user's and holds a `<conversation>` … `</conversation>`
   block (a request to summarise a conversation, one message per line): answer
   `summary of N lines: ` and the first 6 words of each line, joined by `; ` (more than 12
   lines: the first 6 and the last 6, with `… (K more)` between them). Shorter than the
   conversation, and the same for the same lines.
4. Otherwise: `echo: TEXT`, TEXT being the last user message without directives, whitespace
   collapsed (`echo:` alone when empty). With `words=N` the answer is exactly N words: the
   words of that echo repeated in a cycle.

Token counts are word counts: prompt = words of every message text; completion = content
deltas, or for tool calls the words of `name arguments`. `max_tokens` /
`max_completion_tokens` cut the text to that many deltas with `finish_reason: "length"`.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
from dataclasses import dataclass

import orjson

from .directives import ParsedMessage, parse_message
from .errors import OpenAIError
from .request import ChatRequest, Message

_PIECE = re.compile(r"\s*\S+")


@dataclass(frozen=True, slots=True)
class PlannedToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Reply:
    pieces: tuple[str, ...]
    """Content deltas; joined they are the whole content."""
    tool_calls: tuple[PlannedToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Of `prompt_tokens`: reported as read from the prompt cache (`cached_tokens=N`)."""
    cache_write_tokens: int = 0
    """Of `prompt_tokens`: reported as written to the prompt cache (`cache_write_tokens=N`)."""

    @property
    def content(self) -> str | None:
        return None if self.tool_calls else "".join(self.pieces)


def last_user_message(request: ChatRequest) -> Message | None:
    for message in reversed(request.messages):
        if message.role == "user":
            return message
    return None


def parse_last_user(request: ChatRequest) -> tuple[str, ParsedMessage]:
    """The raw text of the last user message and its parsed form."""
    message = last_user_message(request)
    raw = message.text() if message is not None else ""
    return raw, parse_message(raw)


def plan_reply(
    request: ChatRequest, parsed: ParsedMessage, words: int | None = None, as_json: bool = False
) -> Reply:
    prompt_tokens = sum(len(message.text().split()) for message in request.messages)
    last = request.messages[-1]
    if last.role == "tool":
        return _text_reply(_tool_results_text(request), prompt_tokens, request.token_limit)
    if last.role == "user" and parsed.tool_requests and request.tools:
        return _tool_call_reply(request, parsed, prompt_tokens)
    if last.role == "user" and (summary := summary_text(last.text())) is not None:
        return _text_reply(summary, prompt_tokens, request.token_limit)
    text = f"echo: {parsed.text}" if parsed.text else "echo:"
    if as_json:
        text = json.dumps({"echo": parsed.text})
    elif words is not None:
        text = " ".join(itertools.islice(itertools.cycle(text.split()), words))
    return _text_reply(text, prompt_tokens, request.token_limit)


SUMMARY_OPEN, SUMMARY_CLOSE = "<conversation>", "</conversation>"
SUMMARY_LINE_WORDS = 6
SUMMARY_EDGE_LINES = 6


def summary_text(text: str) -> str | None:
    """The deterministic summary of a `<conversation>` block, or None when there is none."""
    start = text.find(SUMMARY_OPEN)
    end = text.find(SUMMARY_CLOSE, start + len(SUMMARY_OPEN))
    if start == -1 or end == -1:
        return None
    lines = [line.split() for line in text[start + len(SUMMARY_OPEN) : end].splitlines()]
    heads = [" ".join(words[:SUMMARY_LINE_WORDS]) for words in lines if words]
    if len(heads) > 2 * SUMMARY_EDGE_LINES:
        skipped = len(heads) - 2 * SUMMARY_EDGE_LINES
        heads = [
            *heads[:SUMMARY_EDGE_LINES],
            f"… ({skipped} more)",
            *heads[-SUMMARY_EDGE_LINES:],
        ]
    count = sum(1 for words in lines if words)
    return f"summary of {count} lines: " + "; ".join(heads)


def _text_reply(text: str, prompt_tokens: int, limit: int | None) -> Reply:
    pieces = tuple(_PIECE.findall(text))
    finish_reason = "stop"
    if limit is not None and len(pieces) > limit:
        pieces = pieces[:limit]
        finish_reason = "length"
    return Reply(
        pieces=pieces,
        tool_calls=(),
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(pieces),
    )


def _tool_call_reply(request: ChatRequest, parsed: ParsedMessage, prompt_tokens: int) -> Reply:
    declared = request.tool_names()
    calls: list[PlannedToolCall] = []
    for wanted in parsed.tool_requests:
        if wanted.name not in declared:
            raise OpenAIError(
                400,
                f"fake upstream: [[tool:{wanted.name}]] names a tool the request does not "
                f"declare (declared: {', '.join(sorted(declared))})",
                param="tools",
            )
        arguments = orjson.dumps(wanted.arguments).decode()
        calls.append(PlannedToolCall(f"call_{secrets.token_hex(12)}", wanted.name, arguments))
    completion_tokens = sum(len(f"{call.name} {call.arguments}".split()) for call in calls)
    return Reply(
        pieces=(),
        tool_calls=tuple(calls),
        finish_reason="tool_calls",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


def _tool_results_text(request: ChatRequest) -> str:
    names: dict[str, str] = {}
    for message in request.messages:
        for call in message.tool_calls or ():
            names[call.id] = call.function.name
    results: list[str] = []
    for message in reversed(request.messages):
        if message.role != "tool":
            break
        call_id = message.tool_call_id or ""
        results.append(f"tool {names.get(call_id, call_id)} returned: {message.text().strip()}")
    return "; ".join(reversed(results))
