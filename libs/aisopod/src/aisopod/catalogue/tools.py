"""tools: the tool catalogue and direct invocation (shared with HTTP `/tools/invoke`).

The tool policy (allow/deny lists) applies; a denied tool is NOT_FOUND, not FORBIDDEN, so the
policy does not reveal which tools exist.
"""

from __future__ import annotations

from pydantic import Field, JsonValue

from aisopod.catalogue.fields import SessionKey, ToolName
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, W = Requirement.READ, Requirement.WRITE
RT = ServiceName.RUNTIME


class ToolInfo(Result):
    name: str
    description: str
    parameters: dict[str, JsonValue] = Field(description="JSON Schema of the tool's args")


class ToolsCatalogResult(Result):
    tools: list[ToolInfo]


class ToolsInvokeParams(Params):
    tool: ToolName
    args: dict[str, JsonValue]
    session_key: SessionKey | None = None


class ToolsInvokeResult(Result):
    ok: bool
    result: JsonValue = None


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("tools.catalog", RT, R, EmptyParams, ToolsCatalogResult, description="tools"),
    MethodSpec(
        "tools.invoke", RT, W, ToolsInvokeParams, ToolsInvokeResult, description="run a tool"
    ),
)
