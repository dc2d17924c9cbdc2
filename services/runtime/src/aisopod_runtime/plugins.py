"""The `aisopod.plugins` entry-point group: its naming rule, and `plugins.list`.

Entry points are named `<kind>.<name>` with kind `tool` or `provider`
(`tool.web_search = my_pkg.tools:WebSearch`). The rule is `plugin_kind_and_name`, used by
this listing and by the tool loader (`tools/plugins.py`, which loads the `tool` ones); an
entry point named otherwise is skipped by both, with a warning. Listing never imports
plugin code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, cast

from aisopod.catalogue.updates import PluginInfo, PluginsListResult

log = logging.getLogger("aisopod.runtime.plugins")

GROUP = "aisopod.plugins"
PluginKind = Literal["tool", "provider"]


def plugin_kind_and_name(point: EntryPoint) -> tuple[PluginKind, str] | None:
    """`("tool", "web_search")` for `tool.web_search`; None (logged) for a name that breaks
    the rule."""
    kind, _, name = point.name.partition(".")
    if name and kind in ("tool", "provider"):
        return cast(PluginKind, kind), name
    log.warning(
        "ignoring plugin entry point %r: name it tool.<name> or provider.<name>", point.name
    )
    return None


def describe(points: Iterable[EntryPoint]) -> list[PluginInfo]:
    out = []
    for point in points:
        named = plugin_kind_and_name(point)
        if named is None:
            continue
        kind, name = named
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
