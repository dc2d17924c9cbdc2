"""Agent tools: the registry and policy, built-ins, `exec` through approvals, plugins."""

from __future__ import annotations

from aisopod_runtime.tools.builtin import BUILTIN_TOOLS
from aisopod_runtime.tools.exec import EXEC_TOOL
from aisopod_runtime.tools.plugins import PluginInfo, load_plugins
from aisopod_runtime.tools.registry import Tool, ToolContext, ToolError, ToolRegistry


def build_registry(*, with_plugins: bool = True) -> tuple[ToolRegistry, list[PluginInfo]]:
    """The built-in tools plus those of installed plugins."""
    registry = ToolRegistry()
    for tool in (*BUILTIN_TOOLS, EXEC_TOOL):
        registry.register(tool)
    plugins = load_plugins(registry) if with_plugins else []
    return registry, plugins


__all__ = ["PluginInfo", "Tool", "ToolContext", "ToolError", "ToolRegistry", "build_registry"]
