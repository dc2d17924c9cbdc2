"""plugins.list: entry points of the `aisopod.plugins` group, never imported."""

from __future__ import annotations

from importlib.metadata import EntryPoint

from aisopod_runtime.plugins import GROUP, describe


def test_kinds_come_from_the_entry_point_name_and_others_are_skipped() -> None:
    points = [
        EntryPoint("tool.web_search", "nowhere.tools:WebSearch", GROUP),
        EntryPoint("provider.anthropic", "nowhere.providers:Anthropic", GROUP),
        EntryPoint("widget.clock", "nowhere:Clock", GROUP),
        EntryPoint("tool.", "nowhere:Empty", GROUP),
    ]
    plugins = describe(points)
    assert [(p.kind, p.name, p.value) for p in plugins] == [
        ("provider", "anthropic", "nowhere.providers:Anthropic"),
        ("tool", "web_search", "nowhere.tools:WebSearch"),
    ]
    assert plugins[0].distribution is None
