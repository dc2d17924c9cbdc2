"""Webhook ingestion (http-api `/hooks`; docs/http-api.md).

`POST /hooks/<path>` runs the first mapping whose `path` (default: its `name`) is `<path>`
and whose `match` holds: every key is a field of the request, `path`,
`headers.<name>` (case-insensitive) or `body.<a.b.c>` (dotted into the JSON body), and its
value must equal the field (a list: any of its items; `"*"`: present). The message is the
`template` with `{{path}}`, `{{headers.<name>}}`, `{{body}}` (the whole body as JSON) and
`{{body.<a.b.c>}}` filled in; the action is a wake (system event into the main session) or
an isolated agent turn.
"""

from typing import Any, Literal

from pydantic import Field, SecretStr

from aisopod.config.sections.base import Section

HookPath = str  # one URL segment or more below /hooks/, e.g. "github" or "ci/builds"


class HookMapping(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    path: HookPath | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$",
        description="the URL below /hooks/ this mapping answers; default: its name",
    )
    match: dict[str, Any] = Field(default_factory=dict)
    action: Literal["wake", "agent"] = "agent"
    template: str = Field("{{body}}", max_length=64 * 1024)
    agent_id: str | None = None
    session_key: str | None = Field(
        None, description="agent action: run in this session instead of a fresh one"
    )
    mode: Literal["now", "next-heartbeat"] = "now"
    timeout_seconds: int | None = Field(None, ge=1, le=86_400)

    @property
    def url_path(self) -> str:
        return self.path or self.name


class HooksSection(Section):
    enabled: bool = False
    token: SecretStr | None = None
    allow_request_session_key: bool = False
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    mappings: list[HookMapping] = Field(default_factory=list)
