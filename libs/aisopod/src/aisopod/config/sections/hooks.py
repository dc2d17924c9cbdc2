"""Webhook ingestion (http-api /hooks)."""

from typing import Any, Literal

from pydantic import Field, SecretStr

from aisopod.config.sections.base import Section


class HookMapping(Section):
    name: str
    match: dict[str, Any] = Field(default_factory=dict)
    action: Literal["wake", "agent"] = "agent"
    template: str = "{{body}}"
    agent_id: str | None = None
    session_key: str | None = None


class HooksSection(Section):
    enabled: bool = False
    token: SecretStr | None = None
    allow_request_session_key: bool = False
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    mappings: list[HookMapping] = Field(default_factory=list)
