"""Config → rules: route classes, key forms, exemptions, and what the section refuses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aisopod.config.model import GatewayConfig
from aisopod.config.sections.limits import LimitsSection, RateRule, RouteClass
from aisopod_ratelimit.ruleset import RuleSet, ip_key


def test_defaults_cover_the_issue_rules() -> None:
    rules = RuleSet.from_section(GatewayConfig().limits).rules
    assert (rules["http"].limit, rules["ws_connect"].limit) == (600, 60)
    auth = rules["auth_failures"]
    assert (auth.limit, auth.window_ms, auth.lockout_ms, auth.fail_open) == (
        10,
        60_000,
        300_000,
        False,
    )
    hooks = rules["hook_failures"]
    assert (hooks.limit, hooks.window_ms, hooks.lockout_ms) == (20, 60_000, 60_000)
    writes = rules["control_writes"]
    assert (writes.key_kind, writes.limit, writes.window_ms) == ("principal", 3, 60_000)
    assert rules["http"].fail_open and not auth.exempt


def test_route_classes_match_by_path_segment_first_match_wins() -> None:
    rules = RuleSet.from_section(GatewayConfig().limits)
    assert rules.route("/ws").rule.name == "ws_connect"  # type: ignore[union-attr]
    assert rules.route("/ws/x").rule.name == "ws_connect"  # type: ignore[union-attr]
    assert rules.route("/wsx").rule.name == "http"  # type: ignore[union-attr]
    assert rules.route("/v1/chat/completions").rule.name == "http"  # type: ignore[union-attr]
    only_ws = RuleSet.from_section(
        LimitsSection(routes=[RouteClass(path_prefix="/ws", rule="ws_connect")])
    )
    assert only_ws.route("/v1/models") is None


def test_the_openclaw_upgrade_path_counts_with_ws_but_not_the_assets_under_it() -> None:
    rules = RuleSet.from_section(GatewayConfig().limits)
    ws, openclaw = rules.route("/ws"), rules.route("/openclaw")
    assert ws is not None and openclaw is not None
    assert openclaw.rule is ws.rule and openclaw.rule.name == "ws_connect"
    # Same `ip` key: upgrades to /ws and /openclaw from one client share one window.
    assert rules.edge_key(openclaw, "192.0.2.7") == rules.edge_key(ws, "192.0.2.7")
    for asset in ("/openclaw/", "/openclaw/assets/index.js", "/openclawx"):
        assert rules.route(asset).rule.name == "http", asset  # type: ignore[union-attr]


def test_an_exact_route_class_keys_ip_route_rules_by_its_path() -> None:
    section = LimitsSection.model_validate(
        {
            "rules": [{"name": "up", "key": "ip_route", "limit": 1, "windowS": 1}],
            "routes": [{"path": "/up", "rule": "up"}],
        }
    )
    rules = RuleSet.from_section(section)
    assert rules.edge_key(rules.route("/up"), "192.0.2.7") == "ip:192.0.2.7|/up"  # type: ignore[arg-type]
    assert rules.route("/up/x") is None


def test_edge_keys_per_ip_or_per_ip_and_route() -> None:
    section = LimitsSection(
        rules=[
            RateRule(name="http", limit=5, window_s=1),
            RateRule(name="tools", key="ip_route", limit=5, window_s=1),
        ],
        routes=[
            RouteClass(path_prefix="/tools", rule="tools"),
            RouteClass(path_prefix="/", rule="http"),
        ],
    )
    rules = RuleSet.from_section(section)
    assert rules.edge_key(rules.route("/v1/models"), "192.0.2.7") == "ip:192.0.2.7"  # type: ignore[arg-type]
    assert rules.edge_key(rules.route("/tools/invoke"), "192.0.2.7") == "ip:192.0.2.7|/tools"  # type: ignore[arg-type]


def test_ipv6_clients_are_keyed_by_prefix_and_mapped_v4_as_v4() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1", 64) == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:2:bbbb::9", 64) == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:2:bbbb::9", 128) == "2001:db8:1:2:bbbb::9"
    assert ip_key("::ffff:192.0.2.1", 64) == "192.0.2.1"
    assert ip_key("198.51.100.4", 64) == "198.51.100.4"
    rules = RuleSet.from_section(LimitsSection())
    assert rules.normalise("ip:2001:db8::5") == "ip:2001:db8::/64"
    assert rules.normalise("principal:abc") == "principal:abc"


def test_exemptions_match_addresses_and_whole_v6_prefixes() -> None:
    rules = RuleSet.from_section(LimitsSection(exempt_cidrs=["10.0.0.0/8", "2001:db8::/48"]))
    http, auth = rules.rules["http"], rules.rules["auth_failures"]
    assert rules.is_exempt(http, "ip:10.9.8.7")
    assert not rules.is_exempt(http, "ip:11.0.0.1")
    assert rules.is_exempt(http, rules.normalise("ip:2001:db8:0:5::1"))
    assert not rules.is_exempt(http, rules.normalise("ip:2001:db9::1"))
    assert not rules.is_exempt(http, "principal:10.0.0.1")
    assert not rules.is_exempt(auth, "ip:10.9.8.7")  # failure lockouts ignore exemptions


@pytest.mark.parametrize(
    "section",
    [
        {"rules": [{"name": "a", "limit": 1, "windowS": 1}] * 2, "routes": []},
        {
            "rules": [{"name": "a", "limit": 1, "windowS": 1}],
            "routes": [{"pathPrefix": "/", "rule": "b"}],
        },
        {
            "rules": [{"name": "a", "key": "principal", "limit": 1, "windowS": 1}],
            "routes": [{"pathPrefix": "/", "rule": "a"}],
        },
        {
            "rules": [{"name": "a", "limit": 1, "windowS": 1}],
            "routes": [{"pathPrefix": "/ws", "path": "/ws", "rule": "a"}],
        },
        {"rules": [{"name": "a", "limit": 1, "windowS": 1}], "routes": [{"rule": "a"}]},
        {
            "rules": [{"name": "a", "limit": 1, "windowS": 1}],
            "routes": [{"path": "openclaw", "rule": "a"}],
        },
        {"exemptCidrs": ["not-a-net"]},
        {"rules": [{"name": "Bad Name", "limit": 1, "windowS": 1}], "routes": []},
        {"rules": [{"name": "a", "limit": 0, "windowS": 1}], "routes": []},
    ],
)
def test_invalid_sections_are_refused(section: dict) -> None:
    with pytest.raises(ValidationError):
        LimitsSection.model_validate(section)
