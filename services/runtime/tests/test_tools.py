"""Tool registry, policy, schemas, plugins, and the exec allowlist."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from pydantic import BaseModel

from aisopod.config.sections.tools import ToolsSection
from aisopod.errors import InvalidParams, NotFound
from aisopod.execpolicy import command_allowed
from aisopod_runtime.tools import build_registry
from aisopod_runtime.tools.plugins import load_plugins
from aisopod_runtime.tools.registry import Tool, ToolRegistry, allowed


class EchoArgs(BaseModel):
    text: str


async def _echo(args: EchoArgs, ctx) -> str:
    return args.text


PLUGIN_TOOL = Tool("plugin_echo", "Echo the text.", EchoArgs, _echo)


def plugin_factory() -> list[Tool]:
    return [Tool("plugin_upper", "Upper-case.", EchoArgs, _echo)]


def broken_plugin() -> list[Tool]:
    raise RuntimeError("boom")


def test_builtins_have_clean_schemas() -> None:
    registry, _ = build_registry(with_plugins=False)
    names = [t.name for t in registry.all()]
    assert names == sorted(
        ["canvas_write", "current_time", "exec", "node_invoke", "sessions_list", "sessions_send"]
    )
    schema = registry.resolve("sessions_send", ToolsSection(), "rpc").parameters()
    assert schema["type"] == "object" and schema["required"] == ["sessionKey", "message"]
    assert "title" not in schema and "$defs" not in str(schema)
    spec = registry.resolve("exec", ToolsSection(), "rpc").openai_spec()
    assert spec["function"]["name"] == "exec" and spec["type"] == "function"


def test_policy_allow_deny_http_and_agent_lists() -> None:
    policy = ToolsSection(allow=["sessions_*", "current_time", "exec"], deny=["sessions_send"])
    assert allowed("sessions_list", policy, "rpc")
    assert not allowed("sessions_send", policy, "rpc")
    assert not allowed("canvas_write", policy, "rpc")
    assert allowed("exec", policy, "rpc") and not allowed("exec", policy, "http")
    assert not allowed("current_time", policy, "agent", agent_tools=["sessions_list"])
    assert allowed("current_time", ToolsSection(), "agent", agent_tools=None)
    registry, _ = build_registry(with_plugins=False)
    with pytest.raises(NotFound):
        registry.resolve("sessions_send", policy, "rpc")
    with pytest.raises(NotFound):
        registry.resolve("missing", ToolsSection(), "rpc")


def test_args_are_validated() -> None:
    registry, _ = build_registry(with_plugins=False)
    tool = registry.resolve("current_time", ToolsSection(), "rpc")
    assert tool.parse({"timezone": "UTC"}).timezone == "UTC"
    with pytest.raises(InvalidParams):
        tool.parse({"tz": "UTC"})


def test_plugins_load_and_failures_are_isolated() -> None:
    registry = ToolRegistry()
    module = __name__
    points = [
        EntryPoint("tool.one", f"{module}:PLUGIN_TOOL", "aisopod.plugins"),
        EntryPoint("tool.two", f"{module}:plugin_factory", "aisopod.plugins"),
        EntryPoint("tool.bad", f"{module}:broken_plugin", "aisopod.plugins"),
        EntryPoint("tool.missing", "no_such_module_x:thing", "aisopod.plugins"),
        EntryPoint("tool.dup", f"{module}:PLUGIN_TOOL", "aisopod.plugins"),
        # The listing's naming rule holds here too: not tools, never imported.
        EntryPoint("provider.other", "no_such_module_y:Provider", "aisopod.plugins"),
        EntryPoint("unnamed", f"{module}:PLUGIN_TOOL", "aisopod.plugins"),
    ]
    infos = {i.name: i for i in load_plugins(registry, points)}
    assert set(infos) == {"tool.one", "tool.two", "tool.bad", "tool.missing", "tool.dup"}
    assert infos["tool.one"].tools == ["plugin_echo"]
    assert infos["tool.two"].tools == ["plugin_upper"]
    assert "boom" in (infos["tool.bad"].error or "")
    assert infos["tool.missing"].error and infos["tool.dup"].error
    assert registry.resolve("plugin_echo", ToolsSection(), "rpc").source == "plugin:tool.one"


def test_exec_allowlist_matching() -> None:
    allow = ["git status", "ls*", "/usr/bin/uptime"]
    assert command_allowed(allow, "git status")
    assert not command_allowed(allow, "git push")
    assert command_allowed(allow, "ls -la /tmp")
    assert command_allowed(allow, "uptime", argv=["/usr/bin/uptime"])
    assert not command_allowed([], "ls")
