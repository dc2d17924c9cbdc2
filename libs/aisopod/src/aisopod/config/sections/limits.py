"""Rate-limit rules (ratelimit service; docs/ratelimit.md).

A rule is a sliding window: a request is admitted when fewer than `limit` were admitted
for the same key in the last `window_s`. Rules are used by name: the edge check (`ratelimit.edge`)
picks one per route class (`routes`, the first whose path prefix or exact path matches wins),
other services name theirs in `<prefix>.ratelimit.check|fail|reset|status`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from aisopod.config.sections.base import Section

_RULE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
KeyKind = Literal["ip", "principal", "device", "ip_route"]
# Key kinds the edge check (`ratelimit.edge`) can build: it runs before auth, so it knows the
# client IP and the route, never the principal or device.
EDGE_KEY_KINDS: frozenset[str] = frozenset({"ip", "ip_route"})


class RateRule(Section):
    name: str
    key: KeyKind = "ip"
    limit: int = Field(ge=1, le=1_000_000)
    window_s: float = Field(gt=0, le=86_400)
    lockout_s: float = Field(
        0.0, ge=0, le=86_400, description="once exceeded, refuse the key this long"
    )
    fail_open: bool = Field(
        True, description="admit when the key's state is unreachable (its owner replica down)"
    )
    exempt: bool = Field(
        True,
        description="`exemptCidrs` apply to this rule; failure lockouts default to false so "
        "that no address (loopback included) may guess credentials without limit",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _RULE_NAME.match(value):
            raise ValueError("rule names are lowercase letters, digits, `_`, `.`, `-`")
        return value


class RouteClass(Section):
    """Which rule the edge check (`ratelimit.edge`) applies to a request path: every path under
    `pathPrefix` (segment-wise), or exactly `path` (one of the two)."""

    # Exactly one of the two is set; the other is left out of config.get and the document
    # rather than shown as null (a null would read as "matches nothing").
    path_prefix: str | None = Field(None, pattern=r"^/", exclude_if=lambda value: value is None)
    path: str | None = Field(
        None,
        pattern=r"^/",
        exclude_if=lambda value: value is None,
        description="this path only, not the paths under it (`/openclaw` is an upgrade path, "
        "`/openclaw/...` the OpenClaw Control UI's assets)",
    )
    rule: str

    @model_validator(mode="after")
    def _one_match(self) -> RouteClass:
        if (self.path_prefix is None) == (self.path is None):
            raise ValueError("a route class names exactly one of `pathPrefix` and `path`")
        return self

    @property
    def pattern(self) -> str:
        """The prefix or exact path, as written (the `ip_route` key part, error messages)."""
        return self.path_prefix if self.path_prefix is not None else self.path  # type: ignore[return-value]


def _default_rules() -> list[RateRule]:
    return [
        RateRule(name="http", key="ip", limit=600, window_s=60),
        RateRule(name="ws_connect", key="ip", limit=60, window_s=60),
        RateRule(
            name="auth_failures",
            key="ip",
            limit=10,
            window_s=60,
            lockout_s=300,
            fail_open=False,
            exempt=False,
        ),
        RateRule(name="hook_failures", key="ip", limit=20, window_s=60, lockout_s=60, exempt=False),
        RateRule(name="control_writes", key="principal", limit=3, window_s=60),
    ]


def _default_routes() -> list[RouteClass]:
    return [
        RouteClass(path_prefix="/ws", rule="ws_connect"),
        # The OpenClaw upgrade counts with /ws; its Control UI's assets below stay under `http`.
        RouteClass(path="/openclaw", rule="ws_connect"),
        RouteClass(path_prefix="/", rule="http"),
    ]


class LimitsSection(Section):
    rules: list[RateRule] = Field(default_factory=_default_rules)
    routes: list[RouteClass] = Field(default_factory=_default_routes)
    exempt_cidrs: list[str] = Field(default_factory=list)
    # IPv6 clients are keyed by their prefix: one host usually holds a whole /64.
    ipv6_prefix: int = Field(64, ge=32, le=128)
    max_keys_per_rule: int = Field(
        100_000, ge=100, description="the least recently used keys are forgotten beyond this"
    )
    cleanup_interval_s: float = Field(5.0, gt=0, le=3600)
    peer_timeout_ms: int = Field(
        250,
        ge=10,
        le=10_000,
        description="wait for the replica owning a key at least this long (longer while its "
        "heartbeats show it alive, up to 3.5 s after the last one)",
    )
    ownership: Literal["primary", "hash"] = Field(
        "primary",
        description="which replica decides a key: `primary`, the first live one in instance "
        "order (Traefik prefers it too, so decisions stay in one process); `hash`, spread by "
        "rendezvous hashing (many replicas behind a random load balancer)",
    )

    @field_validator("exempt_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr.strip(), strict=False)  # ValueError → validation error
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LimitsSection:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule names: {duplicates}")
        by_name = {rule.name: rule for rule in self.rules}
        for route in self.routes:
            rule = by_name.get(route.rule)
            if rule is None:
                raise ValueError(f"route {route.pattern!r} names unknown rule {route.rule!r}")
            if rule.key not in EDGE_KEY_KINDS:
                raise ValueError(
                    f"route {route.pattern!r}: rule {rule.name!r} is keyed by {rule.key}, "
                    "which the edge check (`ratelimit.edge`) cannot know (it runs before auth)"
                )
        return self
