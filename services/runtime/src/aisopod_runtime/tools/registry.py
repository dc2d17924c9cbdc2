"""The tool registry: what a tool is, where it may run, and the allow/deny policy.

A tool has a name, a description, a pydantic model of its args (its JSON Schema is what
models and clients see), an async handler and a `dangerous` flag (it acts outside the
gateway: runs commands, reaches nodes). Handlers raise `ToolError` (or any AisopodError)
for a failure the caller should see; the result is any JSON value.

Policy (config section `tools`): a tool is available when `allow` is empty or one of its
patterns matches, and no `deny` pattern does; the HTTP surface also subtracts `httpDeny`;
an agent's own `tools` list narrows its runs further. Unavailable tools are NOT_FOUND.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from aisopod.config.sections.tools import ToolsSection
from aisopod.errors import AisopodError, NotFound, invalid_params_from_validation
from aisopod.principal import Principal

Surface = Literal["agent", "rpc", "http"]


class ToolError(AisopodError):
    """A tool ran and failed; the message is shown to the model or the caller."""

    code, name, http_status, default_message = -32603, "TOOL_ERROR", 500, "tool failed"


@dataclass(slots=True)
class ToolContext:
    """What a tool call knows besides its args. `services` gives the runtime's parts."""

    principal: Principal
    surface: Surface
    services: Any
    session_key: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    call_id: str | None = None


ToolHandler = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    handler: ToolHandler
    dangerous: bool = False
    source: str = "builtin"
    schema: dict[str, Any] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """JSON Schema of the args (pydantic's, inlined and without titles)."""
        return self.schema or _schema_of(self.args)

    def parse(self, raw: dict[str, Any]) -> BaseModel:
        try:
            return self.args.model_validate(raw)
        except ValidationError as exc:
            raise invalid_params_from_validation(exc.errors()) from None

    def openai_spec(self) -> dict[str, Any]:
        """The tool as a Chat Completions `tools` entry (treat as read-only: shared)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }


@functools.cache
def _schema_of(model: type[BaseModel]) -> dict[str, Any]:
    # Built once per args model: every run offers every tool, and pydantic's schema
    # generation costs far more than the rest of a turn with the echo provider.
    return _clean(model.model_json_schema(by_alias=True))


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return walk(defs[node["$ref"].removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda t: t.name)

    def available(
        self, policy: ToolsSection, surface: Surface, agent_tools: list[str] | None = None
    ) -> list[Tool]:
        return [t for t in self.all() if allowed(t.name, policy, surface, agent_tools)]

    def resolve(
        self,
        name: str,
        policy: ToolsSection,
        surface: Surface,
        agent_tools: list[str] | None = None,
    ) -> Tool:
        tool = self._tools.get(name)
        if tool is None or not allowed(name, policy, surface, agent_tools):
            raise NotFound(f"no tool {name!r}", code="TOOL_NOT_FOUND", tool=name)
        return tool


def allowed(
    name: str, policy: ToolsSection, surface: Surface, agent_tools: list[str] | None = None
) -> bool:
    if policy.allow and not _matches(name, policy.allow):
        return False
    if _matches(name, policy.deny):
        return False
    if surface == "http" and _matches(name, policy.http_deny):
        return False
    return agent_tools is None or _matches(name, agent_tools)
