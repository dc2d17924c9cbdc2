"""Named hook mappings: which mapping a request selects, and the message it templates.

Pure: no I/O. Semantics in `aisopod.config.sections.hooks` (match keys `path`,
`headers.<name>`, `body.<a.b.c>`; values equal, any-of for lists, `"*"` for present;
templates `{{path}}`, `{{headers.<name>}}`, `{{body}}`, `{{body.<a.b.c>}}`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from aisopod.config.sections.hooks import HookMapping

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class HookRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or the text when the body is not JSON


def field(request: HookRequest, key: str) -> Any:
    """The value a match key or placeholder names, or `_MISSING`."""
    if key == "path":
        return request.path
    if key == "body":
        return request.body
    head, _, rest = key.partition(".")
    if head == "headers" and rest:
        return request.headers.get(rest.lower(), _MISSING)
    if head == "body" and rest:
        value: Any = request.body
        for part in rest.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return _MISSING
        return value
    return _MISSING


def _holds(actual: Any, expected: Any) -> bool:
    if actual is _MISSING:
        return False
    if expected == "*":
        return True
    if isinstance(expected, list):
        return any(_holds(actual, item) for item in expected)
    if isinstance(actual, str) != isinstance(expected, str):
        return _text(actual) == _text(expected)  # "3" in YAML matches 3 in the body
    return bool(actual == expected)


def matches(mapping: HookMapping, request: HookRequest) -> bool:
    return all(_holds(field(request, key), want) for key, want in mapping.match.items())


def select(mappings: Iterable[HookMapping], request: HookRequest) -> HookMapping | None:
    """The first mapping that answers this path and whose conditions hold."""
    for mapping in mappings:
        if mapping.url_path == request.path and matches(mapping, request):
            return mapping
    return None


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return orjson.dumps(value).decode()


def render(template: str, request: HookRequest) -> str:
    return _PLACEHOLDER.sub(lambda m: _text(field(request, m.group(1))), template)
