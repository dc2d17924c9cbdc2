"""The browser origin check of the handshake (docs/protocol/websocket.md). Pure.

A connection that sends `Origin` is a browser page. It may connect when its origin is listed
in `cors.allowedOrigins`, or when the page comes from the gateway itself: the origin's
host:port is the `Host` the request was sent to (or the `X-Forwarded-Host` a trusted proxy
saw) *and* that host is one the operator configured (aisopod.hostnames: an IP address, a
loopback name, the public URL's or the bind host). The second condition stops DNS
rebinding: `evil.example` re-pointed at the gateway sends Host = Origin =
`evil.example:<port>`, which matches itself but is no name of ours.
Clients without `Origin` (CLI, SDKs, nodes) are not browsers and are not checked here.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aisopod.hostnames import is_configured_host

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _netloc(scheme: str, host_port: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host_port.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower(), port or _DEFAULT_PORTS.get(scheme, 80)


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
    if mine is None or not is_configured_host(mine[0], own_names):
        return False
    for candidate in (host, forwarded_host):
        if candidate:
            # A proxy may list several hosts; the first is the one the client used.
            first = candidate.split(",")[0]
            if _netloc(parts.scheme, first) == mine:
                return True
    return False
