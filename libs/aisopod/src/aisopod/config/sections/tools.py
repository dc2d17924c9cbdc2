"""Tool policy (runtime tools, http-api /tools/invoke).

Names may be exact tool names or shell-style patterns (`canvas_*`). A tool is available
when `allow` is empty or matches it, and `deny` does not; on the HTTP surface `httpDeny`
is subtracted as well. An agent's own `tools` list narrows further for its runs.
"""

from pydantic import Field

from aisopod.config.sections.base import Section


def _default_http_deny() -> list[str]:
    # Tools that spawn sessions, edit cron or config, or run commands (docs/protocol/http.md).
    return ["sessions_send", "cron", "config", "exec", "node_invoke"]


class ToolsSection(Section):
    allow: list[str] = Field(default_factory=list, description="empty: every tool allowed")
    deny: list[str] = Field(default_factory=list)
    http_deny: list[str] = Field(default_factory=_default_http_deny)
    timeout_ms: int = Field(60_000, ge=100, description="one tool call, approvals excluded")
    exec_approval_timeout_ms: int = Field(
        120_000, ge=1_000, description="how long an agent's exec call waits for an operator"
    )
