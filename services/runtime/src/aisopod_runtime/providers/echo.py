"""The built-in offline `echo` provider: a chat answers on a fresh install without any key.

Deterministic, the same rules as the fake upstream used in tests:

1. The conversation ends with tool results → `tool NAME returned: CONTENT` per trailing
   result, joined by `; `.
2. Tools are offered and the last user message holds `[[tool:NAME {json args}]]`
   directives → one tool call per directive naming an offered tool (args optional).
3. The last user message holds a `<conversation>` … `</conversation>` block (what
   compaction sends, compaction.py) → `summary of N lines: ` and the first 6 words of
   each line joined by `; ` (over 12 lines: the first 6 and the last 6 around
   `… (K more)`). Shorter than the conversation, so compaction works offline too.
4. Otherwise `echo: TEXT`, TEXT being the last user message without directives,
   whitespace collapsed.

The answer streams in at most `CHUNKS` chunks of whole words with `chunk_delay_s` between
them (a fresh install shows streaming in the UI and in `chat.event` deltas, which the run's
emitter sends at most every 0.1 s: a pause at least that long makes each chunk a delta);
usage counts words.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aisopod_runtime.providers.base import (
    DiscoveredModel,
    Finish,
    ModelRequest,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCalls,
    Usage,
)

_PIECE = re.compile(r"\s*\S+")
CHUNKS = 4
_TOOL_OPEN = "[[tool:"
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:\-]+")
_JSON = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    arguments: dict[str, Any]


def split_directives(raw: str) -> tuple[str, list[Directive]]:
    """The text without `[[tool:...]]` directives (whitespace collapsed), and the directives.

    A malformed directive is left in the text as written: the echo shows what went wrong.
    """
    pieces: list[str] = []
    found: list[Directive] = []
    pos = 0
    while (start := raw.find(_TOOL_OPEN, pos)) != -1:
        parsed = _parse_one(raw, start + len(_TOOL_OPEN))
        if parsed is None:
            pieces.append(raw[pos : start + len(_TOOL_OPEN)])
            pos = start + len(_TOOL_OPEN)
            continue
        directive, end = parsed
        pieces.append(raw[pos:start] + " ")  # the directive separates what it stood between
        found.append(directive)
        pos = end
    pieces.append(raw[pos:])
    return " ".join("".join(pieces).split()), found


def _parse_one(raw: str, cursor: int) -> tuple[Directive, int] | None:
    name = _TOOL_NAME.match(raw, cursor)
    if name is None:
        return None
    cursor = _skip_spaces(raw, name.end())
    arguments: Any = {}
    if raw.startswith("{", cursor):
        try:
            arguments, cursor = _JSON.raw_decode(raw, cursor)
        except json.JSONDecodeError:
            return None
        if not isinstance(arguments, dict):
            return None
        cursor = _skip_spaces(raw, cursor)
    if not raw.startswith("]]", cursor):
        return None
    return Directive(name.group(0), arguments), cursor + 2


def _skip_spaces(raw: str, cursor: int) -> int:
    while cursor < len(raw) and raw[cursor].isspace():
        cursor += 1
    return cursor


def _chunks(pieces: list[str]) -> list[str]:
    """The words in at most CHUNKS runs of (nearly) equal length."""
    size = max(1, -(-len(pieces) // CHUNKS))
    return ["".join(pieces[at : at + size]) for at in range(0, len(pieces), size)]


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


class EchoProvider:
    def __init__(
        self, provider_id: str = "echo", models: list[str] | None = None, chunk_delay_s: float = 0
    ) -> None:
        self.id = provider_id
        self.models = models or ["echo"]
        self.chunk_delay_s = chunk_delay_s

    async def close(self) -> None:
        return None

    async def list_models(self) -> list[DiscoveredModel]:
        return [DiscoveredModel(m) for m in self.models]

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        messages = request.messages
        prompt = sum(len(message_text(m).split()) for m in messages)
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            text = _tool_results_text(messages)
        else:
            raw = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
            text, directives = split_directives(raw)
            offered = {t.get("function", {}).get("name") for t in request.tools}
            calls = [d for d in directives if d.name in offered]
            if calls and last.get("role") == "user":
                tool_calls = tuple(
                    ToolCall(
                        f"call_echo_{i}", d.name, json.dumps(d.arguments, separators=(",", ":"))
                    )
                    for i, d in enumerate(calls, 1)
                )
                words = sum(len(f"{c.name} {c.arguments}".split()) for c in tool_calls)
                yield ToolCalls(tool_calls)
                yield Finish("tool_calls", Usage(prompt, words, calls=1))
                return
            summary = summary_text(raw) if last.get("role") == "user" else None
            if summary is not None:
                text = summary
            else:
                text = f"echo: {text}" if text else "echo:"
        pieces = _PIECE.findall(text)
        reason = "stop"
        if request.max_tokens is not None and len(pieces) > request.max_tokens:
            pieces = pieces[: request.max_tokens]
            reason = "length"
        for at, chunk in enumerate(_chunks(pieces)):
            if at and self.chunk_delay_s > 0:
                await asyncio.sleep(self.chunk_delay_s)  # pacing, so the answer streams
            yield TextDelta(chunk)
        yield Finish(reason, Usage(prompt, len(pieces), calls=1))


SUMMARY_OPEN, SUMMARY_CLOSE = "<conversation>", "</conversation>"
SUMMARY_LINE_WORDS = 6
SUMMARY_EDGE_LINES = 6


def summary_text(text: str) -> str | None:
    """The deterministic summary of a `<conversation>` block (the fake upstream's rule)."""
    start = text.find(SUMMARY_OPEN)
    end = text.find(SUMMARY_CLOSE, start + len(SUMMARY_OPEN))
    if start == -1 or end == -1:
        return None
    lines = [line.split() for line in text[start + len(SUMMARY_OPEN) : end].splitlines()]
    heads = [" ".join(words[:SUMMARY_LINE_WORDS]) for words in lines if words]
    count = len(heads)
    if count > 2 * SUMMARY_EDGE_LINES:
        skipped = count - 2 * SUMMARY_EDGE_LINES
        heads = [*heads[:SUMMARY_EDGE_LINES], f"… ({skipped} more)", *heads[-SUMMARY_EDGE_LINES:]]
    return f"summary of {count} lines: " + "; ".join(heads)


def _tool_results_text(messages: list[dict[str, Any]]) -> str:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call.get("id", "")] = call.get("function", {}).get("name", "tool")
    trailing: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        trailing.append(message)
    parts = [
        f"tool {names.get(m.get('tool_call_id', ''), 'tool')} returned: {message_text(m)}"
        for m in reversed(trailing)
    ]
    return "; ".join(parts)
