"""Which host names are the gateway's own: the defence against DNS rebinding.

A page on `evil.example` whose DNS name the attacker re-points at the gateway's address is,
for the browser, same-origin with the gateway: it sends `Host: evil.example:<port>` (and
`Origin` with the same value). Only the host name gives it away. A host is ours when the
operator named it: an IP address (the address the browser really connected to; it cannot
be rebound), a loopback name (`localhost`, `*.localhost`: browsers resolve those
themselves, never through DNS), the host of the public URL (`AISOPOD_PUBLIC_URL`), the
bind host, or the host of an origin listed in `cors.allowedOrigins`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

_WILDCARD_BINDS = {"", "0.0.0.0", "::", "[::]"}


def _hostname(url: str) -> str | None:
    try:
        return urlsplit(url.strip()).hostname
    except ValueError:
        return None


def own_host_names(
    public_url: str | None, bind_host: str | None, allowed_origins: Iterable[str] = ()
) -> frozenset[str]:
    """The names the operator gave this gateway (lower case; a wildcard bind names none)."""
    names: set[str] = set()
    for url in (public_url or "", *allowed_origins):
        hostname = _hostname(url) if url else None
        if hostname:
            names.add(hostname.lower())
    if bind_host and bind_host.strip() not in _WILDCARD_BINDS:
        names.add(bind_host.strip().strip("[]").lower())
    return frozenset(names)


def is_configured_host(host: str, own_names: Iterable[str]) -> bool:
    """Whether `host` (a bare host name or address, no port) is one of ours."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in set(own_names)
    return True


def host_of_header(value: str) -> str | None:
    """The host name of a `Host` header value (`name:port`, `[::1]:port`)."""
    try:
        return urlsplit(f"//{value.strip()}").hostname
    except ValueError:
        return None
