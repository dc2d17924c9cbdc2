"""plugins.list: what is installed in the `aisopod.plugins` entry-point group.

Entry points are named `<kind>.<name>` with kind `tool` or `provider`
(`tool.web_search = my_pkg.tools:WebSearch`). Listing never imports plugin code; an entry
point of another kind is skipped with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from aisopod.catalogue.updates import PluginInfo, PluginsListResult

log = logging.getLogger("aisopod.runtime.plugins")

GROUP = "aisopod.plugins"
KINDS = ("tool", "provider")


def describe(points: Iterable[EntryPoint]) -> list[PluginInfo]:
    out = []
    for point in points:
        kind, _, name = point.name.partition(".")
        if kind not in KINDS or not name:
            log.warning(
                "ignoring plugin entry point %r: name it tool.<name> or provider.<name>", point.name
            )
            continue
        dist = getattr(point, "dist", None)
        out.append(
            PluginInfo(
                name=name,
                kind=kind,
                value=point.value,
                distribution=dist.metadata["Name"] if dist is not None else None,
                version=dist.version if dist is not None else None,
            )
        )
    return sorted(out, key=lambda p: (p.kind, p.name))


async def plugins_list(_: Any, ctx: Any) -> PluginsListResult:
    return PluginsListResult(plugins=describe(entry_points(group=GROUP)))
