"""The browser origin check of the handshake (protocol.md). Pure.

A connection that sends `Origin` is a browser page. It may connect when its origin is listed
in `cors.allowedOrigins`, or when the page comes from the gateway itself: the origin's
host:port is the `Host` the request was sent to (or the `X-Forwarded-Host` a trusted proxy
saw) *and* that host is one the operator configured — an IP address, a loopback name
(`localhost`, `*.localhost`), the host of the public URL (`AISOPOD_PUBLIC_URL`) or the bind
host. The second condition stops DNS rebinding: a page on `evil.example` whose name the
attacker re-points at the gateway's address sends `Host` = `Origin` = `evil.example:<port>`,
which matches itself but is no name of ours. An IP literal cannot be rebound (it is the
address the browser really connected to), so it needs no configuration.
Clients without `Origin` (CLI, SDKs, nodes) are not browsers and are not checked here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WILDCARD_BINDS = {"", "0.0.0.0", "::", "[::]"}


def _netloc(scheme: str, host_port: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host_port.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower(), port or _DEFAULT_PORTS.get(scheme, 80)


def own_host_names(public_url: str | None, bind_host: str | None) -> frozenset[str]:
    """The host names the operator gave this gateway: the public URL's and the bind host
    (a wildcard bind names nothing)."""
    names: set[str] = set()
    if public_url:
        try:
            hostname = urlsplit(public_url).hostname
        except ValueError:
            hostname = None
        if hostname:
            names.add(hostname.lower())
    if bind_host and bind_host.strip() not in _WILDCARD_BINDS:
        names.add(bind_host.strip().strip("[]").lower())
    return frozenset(names)


def _configured(host: str, own_names: Iterable[str]) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True  # browsers resolve these to loopback themselves, never through DNS
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in own_names
    return True


def origin_allowed(
    origin: str | None,
    *,
    host: str | None,
    forwarded_host: str | None,
    allowed: Iterable[str],
    own_names: Iterable[str] = (),
) -> bool:
    if origin is None:
        return True
    origin = origin.strip()
    if origin in {o.strip().rstrip("/") for o in allowed}:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    mine = _netloc(parts.scheme, parts.netloc)
    if mine is None or not _configured(mine[0], set(own_names)):
        return False
    for candidate in (host, forwarded_host):
        if candidate:
            # A proxy may list several hosts; the first is the one the client used.
            first = candidate.split(",")[0]
            if _netloc(parts.scheme, first) == mine:
                return True
    return False
