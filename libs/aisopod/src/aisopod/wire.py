"""Base models for everything that crosses a boundary (WS, NATS, HTTP).

Python attributes are snake_case; the wire is camelCase, as docs/protocol/ writes it
(`sessionKey`, `idempotencyKey`). Params reject unknown fields so a typo is a clear
INVALID_PARAMS instead of a silently ignored option; results tolerate extras.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


# defer_build: a model's validator is built on its first use, not at import. Every process
# imports the whole catalogue (68 methods) but validates only the methods it serves or
# forwards, so most of those validators were built for nothing (memory and start time).
class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, defer_build=True)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as it goes on the wire: camelCase, only the fields that were set
        (an explicit null survives, so "null clears" reaches the owner)."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")


class Params(WireModel):
    """Params of an RPC method. Unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", defer_build=True
    )


class Result(WireModel):
    """Result of an RPC method. Extra fields pass through."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", defer_build=True
    )


class EmptyParams(Params):
    """`{}`: the method takes no params."""
