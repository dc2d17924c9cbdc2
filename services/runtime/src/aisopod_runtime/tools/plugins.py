"""Tools from plugins: the `aisopod.plugins` entry-point group.

A distribution declares, in its pyproject.toml:

    [project.entry-points."aisopod.plugins"]
    weather = "aisopod_weather:plugin"

where `plugin` is a `Tool`, a list of `Tool`s, or a callable taking no argument that
returns either. A plugin that fails to load, or whose tool name is taken, is logged and
skipped: one bad plugin never stops the runtime. `discover` reports what was found for
`plugins.list`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from importlib.metadata import EntryPoint, entry_points

from aisopod_runtime.tools.registry import Tool, ToolRegistry

log = logging.getLogger("aisopod.runtime.plugins")

GROUP = "aisopod.plugins"


@dataclass(slots=True)
class PluginInfo:
    name: str
    value: str
    distribution: str | None
    tools: list[str] = field(default_factory=list)
    error: str | None = None

    def wire(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "entryPoint": self.value,
            "distribution": self.distribution,
            "tools": self.tools,
        }
        if self.error:
            out["error"] = self.error
        return out


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
