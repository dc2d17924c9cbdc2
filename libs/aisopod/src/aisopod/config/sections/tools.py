"""Tool policy (runtime tools, http-api /tools/invoke)."""

from pydantic import Field

from aisopod.config.sections.base import Section


def _default_http_deny() -> list[str]:
    # Tools that spawn sessions, edit cron or config, or run commands (http.md).
    return ["sessions_send", "cron", "config", "exec", "node_invoke"]


class ToolsSection(Section):
    allow: list[str] = Field(default_factory=list, description="empty: every tool allowed")
    deny: list[str] = Field(default_factory=list)
    http_deny: list[str] = Field(default_factory=_default_http_deny)
