"""JSON encoding used on every internal boundary (orjson: 20–30 % cheaper than json)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def canonical(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace): the basis of config hashes."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS)


def to_wire(value: Any) -> Any:
    """A handler's return value as JSON-ready data (models by alias, camelCase)."""
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json")
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value
