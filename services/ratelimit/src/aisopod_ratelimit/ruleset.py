"""The `limits` config section compiled for the hot path: plain values, parsed networks.

Pure. Built once per configuration change; the decision path reads only attributes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from aisopod.clientip import Network, parse_networks
from aisopod.config.sections.limits import LimitsSection
from aisopod.routeclass import RouteClasses, covers
from aisopod_ratelimit.ownership import Mode

IP_PREFIX = "ip:"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    key_kind: str
    limit: int
    window_ms: int
    lockout_ms: int
    fail_open: bool
    exempt: bool


@dataclass(frozen=True, slots=True)
class Route:
    path_prefix: str  # the prefix, or the exact path when `exact`
    rule: Rule
    exact: bool = False

    def covers(self, path: str) -> bool:
        """Segment-wise for a prefix (`/ws` covers `/ws` and `/ws/x`, not `/wsx`); an exact
        route covers its path only (aisopod/routeclass.py, shared with http-api)."""
        return covers(self.path_prefix, self.exact, path)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: dict[str, Rule]
    routes: tuple[Route, ...]
    classes: RouteClasses  # the same classes, for the one matcher http-api uses too
    exempt_networks: tuple[Network, ...]
    ipv6_prefix: int
    max_keys: int
    cleanup_interval_s: float
    peer_timeout_s: float
    ownership: Mode

    @classmethod
    def from_section(cls, section: LimitsSection) -> RuleSet:
        rules = {
            r.name: Rule(
                name=r.name,
                key_kind=r.key,
                limit=r.limit,
                window_ms=max(1, round(r.window_s * 1000)),
                lockout_ms=round(r.lockout_s * 1000),
                fail_open=r.fail_open,
                exempt=r.exempt,
            )
            for r in section.rules
        }
        return cls(
            rules=rules,
            routes=tuple(
                Route(rc.pattern, rules[rc.rule], exact=rc.path is not None)
                for rc in section.routes
            ),
            classes=RouteClasses.from_section(section),
            exempt_networks=parse_networks(tuple(section.exempt_cidrs)),
            ipv6_prefix=section.ipv6_prefix,
            max_keys=section.max_keys_per_rule,
            cleanup_interval_s=section.cleanup_interval_s,
            peer_timeout_s=section.peer_timeout_ms / 1000,
            ownership=section.ownership,
        )

    def route(self, path: str) -> Route | None:
        """The first route class that covers `path` (aisopod/routeclass.py: http-api keys
        its kept exempt verdicts by the same class, so the two must pick alike)."""
        position = self.classes.index(path)
        return None if position is None else self.routes[position]

    def edge_key(self, route: Route, address: str) -> str:
        """The key the edge check (`ratelimit.edge`) counts a client under for this route."""
        key = IP_PREFIX + ip_key(address, self.ipv6_prefix)
        return key if route.rule.key_kind == "ip" else f"{key}|{route.path_prefix}"

    def normalise(self, key: str) -> str:
        """Callers' `ip:<addr>` keys in the same form as the edge's (same window)."""
        if key.startswith(IP_PREFIX):
            address, sep, rest = key[len(IP_PREFIX) :].partition("|")
            return IP_PREFIX + ip_key(address, self.ipv6_prefix) + sep + rest
        return key

    def is_exempt(self, rule: Rule, key: str) -> bool:
        if not (rule.exempt and self.exempt_networks and key.startswith(IP_PREFIX)):
            return False
        return _in_networks(key[len(IP_PREFIX) :].partition("|")[0], self.exempt_networks)


@lru_cache(maxsize=8192)
def ip_key(address: str, ipv6_prefix: int) -> str:
    """IPv4 as is; IPv4-mapped IPv6 as IPv4; IPv6 as its /prefix network (`2001:db8::/64`);
    anything unparseable verbatim (it is still a distinct key)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ipv6_prefix < 128:
            return str(ipaddress.ip_network(f"{ip}/{ipv6_prefix}", strict=False))
    return str(ip)


@lru_cache(maxsize=8192)
def _in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        if "/" in address:  # an IPv6 prefix key: exempt when the whole prefix is
            net = ipaddress.ip_network(address, strict=False)
            return any(net.version == n.version and net.subnet_of(n) for n in networks)  # type: ignore[arg-type]
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)
