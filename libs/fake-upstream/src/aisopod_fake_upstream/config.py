"""Settings of one fake upstream server (validated; the live server is `server.FakeServer`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODELS = ("fake-small", "fake-large")


class FakeUpstreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    """0 picks a free port."""
    api_key: str | None = None
    """When set, `/v1/*` requires `Authorization: Bearer <api_key>` (401 otherwise)."""
    models: tuple[str, ...] = Field(default=DEFAULT_MODELS, min_length=1)
    """Ids listed by `GET /v1/models`."""
    strict_models: bool = False
    """Answer 404 `model_not_found` for a model outside `models` (default: serve any id)."""
    max_recorded: int = Field(default=1000, ge=1)
    """Size of the ring buffer behind `GET /_requests`."""
