"""The client IP behind proxies: walk X-Forwarded-For right to left over trusted hops.

Pure. Used by auth and ratelimit (and any edge) so every service agrees on who the client
is. Headers from a peer that is not a trusted proxy are ignored: a client cannot choose
its own IP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip().strip('"')
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted(address: str, trusted: Iterable[str]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in net for net in parse_networks(tuple(trusted)))


def client_ip(peer: str, forwarded_for: str | None, trusted: Iterable[str]) -> str:
    """The client's IP: `peer` itself unless it is a trusted proxy, else the right-most
    X-Forwarded-For hop that is not trusted (or the left-most if all are)."""
    networks = parse_networks(tuple(trusted))
    peer_ip = _ip(peer)
    if peer_ip is None:
        return peer
    if not forwarded_for or not any(peer_ip in n for n in networks):
        return str(peer_ip)
    hops = [h for h in (_ip(p) for p in forwarded_for.split(",")) if h is not None]
    for hop in reversed(hops):
        if not any(hop in n for n in networks):
            return str(hop)
    return str(hops[0]) if hops else str(peer_ip)


def is_loopback(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def lockout_key(ip: str, ipv6_prefix: int = 64) -> str:
    """The key auth's per-IP lockout counts an address under: IPv4 (also IPv4-mapped IPv6)
    as is, any other IPv6 address by its prefix (one host usually holds a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)
