"""How the fake behaves for one chat request: failures, delays, broken streams, long answers.

Three sources can set a behaviour, each overriding the one before field by field:
a rule programmed through `POST /_control`, `x-fake-*` request headers, and a
`[[fake:...]]` directive in the last user message.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import OpenAIError

HEADER_PREFIX = "x-fake-"


class Behaviour(BaseModel):
    """What to do differently from a plain, immediate, successful answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: int | None = Field(default=None, ge=400, le=599)
    """Answer with this error status (always, or only the first `fail_times` times)."""
    retry_after: float | None = Field(default=None, ge=0)
    """Seconds sent in `Retry-After` with an error status."""
    delay_ms: int = Field(default=0, ge=0, le=600_000)
    """Wait this long before the first byte of the response."""
    chunk_delay_ms: int = Field(default=0, ge=0, le=60_000)
    """Wait this long between streamed events."""
    cut_after: int | None = Field(default=None, ge=0)
    """Close the connection after this many SSE events (stream) or body bytes (non-stream)."""
    drop: bool = False
    """Close the connection without sending any response."""
    words: int | None = Field(default=None, ge=1, le=1_000_000)
    """Make the text answer exactly this many words long."""
    json_reply: bool = False
    """Answer with the JSON object `{"echo": TEXT}` instead of `echo: TEXT`."""
    fail_times: int | None = Field(default=None, ge=1)
    """Fail only the first N identical requests (same last user message), then succeed."""
    cached_tokens: int | None = Field(default=None, ge=0)
    """Report this many prompt tokens as read from the prompt cache (at most all of them)."""
    cache_write_tokens: int | None = Field(default=None, ge=0)
    """Report this many prompt tokens as written to the prompt cache (at most the rest)."""

    @property
    def is_immediate(self) -> bool:
        """True when the response can be written at once, with no timing or connection tricks."""
        return not (self.delay_ms or self.chunk_delay_ms or self.drop or self.cut_after is not None)

    def overridden_by(self, other: Behaviour | None) -> Behaviour:
        """This behaviour with every field that `other` set explicitly taken from `other`."""
        if other is None or not other.model_fields_set:
            return self
        if not self.model_fields_set:
            return other
        update = {name: getattr(other, name) for name in other.model_fields_set}
        return self.model_copy(update=update)


PLAIN = Behaviour()


def behaviour_from_fields(fields: Mapping[str, object], source: str) -> Behaviour:
    """Validate raw `key=value` fields (strings are fine: pydantic converts them)."""
    unknown = sorted(set(fields) - set(Behaviour.model_fields))
    if unknown:
        known = ", ".join(Behaviour.model_fields)
        raise OpenAIError(
            400, f"fake upstream: unknown {source} key(s) {', '.join(unknown)}; known: {known}"
        )
    try:
        return Behaviour.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise OpenAIError(
            400, f"fake upstream: bad {source} value for {where}: {first['msg']}"
        ) from exc


def behaviour_from_headers(headers: Mapping[str, str]) -> Behaviour | None:
    """The behaviour set by `x-fake-*` headers (names lower-case), or None if there are none."""
    fields = {
        name[len(HEADER_PREFIX) :].replace("-", "_"): value
        for name, value in headers.items()
        if name.startswith(HEADER_PREFIX)
    }
    if not fields:
        return None
    return behaviour_from_fields(fields, "x-fake-* header")
