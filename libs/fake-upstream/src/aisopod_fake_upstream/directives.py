"""Directives embedded in a user message: `[[fake:key=value ...]]` and `[[tool:NAME {json}]]`.

Pure text parsing, no I/O. A message is split into the text a person wrote (directives
removed, whitespace collapsed), the raw `fake` fields, and the tool calls it asks for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import OpenAIError

_FAKE = re.compile(r"\[\[fake:([^\]]*)\]\]")
_TOOL_OPEN = "[[tool:"
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
# Tool arguments are JSON and may themselves contain "]]", so they are read with a JSON
# decoder rather than a regex.
_JSON = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A tool call asked for by `[[tool:NAME {args}]]`."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    text: str
    fake_fields: dict[str, str] = field(default_factory=dict)
    tool_requests: tuple[ToolRequest, ...] = ()


def parse_message(raw: str) -> ParsedMessage:
    """Split a user message into its text, `fake` fields and tool requests."""
    if "[[" not in raw:
        return ParsedMessage(text=" ".join(raw.split()))
    fields: dict[str, str] = {}
    for match in _FAKE.finditer(raw):
        for token in match.group(1).split():
            key, sep, value = token.partition("=")
            # A bare key is a flag: `[[fake:drop]]` means drop=true.
            fields[key] = value if sep else "true"
    without_fake = _FAKE.sub(" ", raw)
    text, tools = _extract_tools(without_fake)
    return ParsedMessage(text=" ".join(text.split()), fake_fields=fields, tool_requests=tools)


def _extract_tools(raw: str) -> tuple[str, tuple[ToolRequest, ...]]:
    pieces: list[str] = []
    tools: list[ToolRequest] = []
    pos = 0
    while (start := raw.find(_TOOL_OPEN, pos)) != -1:
        pieces.append(raw[pos:start])
        cursor = start + len(_TOOL_OPEN)
        name_match = _TOOL_NAME.match(raw, cursor)
        if name_match is None:
            raise _bad_directive("a tool name must follow '[[tool:'")
        cursor = name_match.end()
        cursor = _skip_spaces(raw, cursor)
        arguments: Any = {}
        if raw.startswith("{", cursor):
            try:
                arguments, cursor = _JSON.raw_decode(raw, cursor)
            except json.JSONDecodeError as exc:
                raise _bad_directive(f"tool arguments are not valid JSON: {exc.msg}") from exc
            if not isinstance(arguments, dict):
                raise _bad_directive("tool arguments must be a JSON object")
            cursor = _skip_spaces(raw, cursor)
        if not raw.startswith("]]", cursor):
            raise _bad_directive("a tool directive must end with ']]'")
        tools.append(ToolRequest(name=name_match.group(0), arguments=arguments))
        pos = cursor + 2
    pieces.append(raw[pos:])
    return " ".join(pieces), tuple(tools)


def _skip_spaces(raw: str, cursor: int) -> int:
    while cursor < len(raw) and raw[cursor].isspace():
        cursor += 1
    return cursor


def _bad_directive(detail: str) -> OpenAIError:
    message = f"fake upstream: bad [[tool:...]] directive: {detail}"
    return OpenAIError(400, message, param="messages")
