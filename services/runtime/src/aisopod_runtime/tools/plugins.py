"""Tools from plugins: the `aisopod.plugins` entry-point group.

A distribution declares, in its pyproject.toml:

    [project.entry-points."aisopod.plugins"]
    "tool.weather" = "aisopod_weather:plugin"

where `plugin` is a `Tool`, a list of `Tool`s, or a callable taking no argument that
returns either. Entry points follow the group's one naming rule
(`aisopod_runtime.plugins.plugin_kind_and_name`): `tool.<name>` ones are loaded here,
`provider.<name>` ones are not tools, anything else is skipped with a warning. A plugin
that fails to load, or whose tool name is taken, is logged and skipped: one bad plugin
never stops the runtime.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points

from aisopod_runtime.plugins import GROUP, plugin_kind_and_name
from aisopod_runtime.tools.registry import Tool, ToolRegistry

log = logging.getLogger("aisopod.runtime.plugins")


@dataclass(slots=True)
class PluginInfo:
    name: str
    value: str
    distribution: str | None
    tools: list[str] = field(default_factory=list)
    error: str | None = None


def _tools_of(obj: object) -> list[Tool]:
    if callable(obj) and not isinstance(obj, Tool):
        obj = obj()
    items = [obj] if isinstance(obj, Tool) else list(obj)  # type: ignore[call-overload]
    if not all(isinstance(t, Tool) for t in items):
        raise TypeError("a plugin must provide Tool objects")
    return items


def load_plugins(
    registry: ToolRegistry, points: Iterable[EntryPoint] | None = None
) -> list[PluginInfo]:
    """Register every plugin's tools into `registry`; one PluginInfo per entry point."""
    found = entry_points(group=GROUP) if points is None else points
    infos: list[PluginInfo] = []
    for point in found:
        named = plugin_kind_and_name(point)
        if named is None or named[0] != "tool":
            continue
        dist = getattr(point, "dist", None)
        info = PluginInfo(point.name, point.value, dist.name if dist else None)
        infos.append(info)
        try:
            tools = _tools_of(point.load())
            for tool in tools:
                registry.register(replace(tool, source=f"plugin:{point.name}"))
                info.tools.append(tool.name)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %s could not be loaded: %s", point.name, info.error)
    return infos
