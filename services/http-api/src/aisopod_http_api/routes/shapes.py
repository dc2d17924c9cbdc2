"""The non-/v1 envelopes, for responses and the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, JsonValue


class PlainErrorBody(BaseModel):
    type: str
    message: str


class PlainError(BaseModel):
    """Every error outside /v1."""

    ok: Literal[False] = False
    error: PlainErrorBody


class Ok(BaseModel):
    ok: Literal[True] = True


class OkResult(Ok):
    result: JsonValue = None


PLAIN_ERRORS: dict[int | str, dict[str, Any]] = {"default": {"model": PlainError}}
