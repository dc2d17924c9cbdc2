"""RFC 7396 merge patch and the changed-paths diff of config writes (pure)."""

from __future__ import annotations

import pytest

from aisopod.config.model import GatewayConfig
from aisopod_runtime.config_methods import changed_paths, merge_patch

# The examples of RFC 7396, appendix A.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_EXAMPLES)
def test_merge_patch_matches_rfc_7396_examples(target, patch, expected) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_its_inputs() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_changed_paths_names_leaves_and_whole_lists() -> None:
    old = GatewayConfig().document()
    new = merge_patch(old, {"ui": {"title": "x"}, "cors": {"allowedOrigins": ["https://a"]}})
    assert changed_paths(old, new) == ["cors.allowedOrigins", "ui.title"]
    assert changed_paths(old, old) == []
    assert changed_paths({"a": 1}, {"b": 1}) == ["a", "b"]
