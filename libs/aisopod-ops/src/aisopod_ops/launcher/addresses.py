"""The addresses of a local stack: what its listeners bind, and what clients connect to.

`aisopod stack up --host H` binds every listener to H. A wildcard (`0.0.0.0`, `::`) is an
address to listen on, not one to connect to, so every URL the launcher writes or probes
uses the loopback of the same family instead (`127.0.0.1`, `::1`). An IPv6 address is
bracketed wherever it is followed by a port (`[::1]:8080`, `http://[::1]:8080`).
"""

from __future__ import annotations

import ipaddress

WILDCARD_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def bare_host(host: str) -> str:
    """`host` without brackets (`[::1]` → `::1`); the form a socket bind takes."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(bare_host(host)).version == 6
    except ValueError:
        return False  # a name (`localhost`, `gw.example`)


def connect_host(host: str) -> str:
    """The address a client on this machine connects to for a listener bound to `host`:
    the loopback of the same family for a wildcard, else `host` itself (bare)."""
    bare = bare_host(host)
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return bare
    if address.is_unspecified:
        return WILDCARD_LOOPBACK[str(address)]
    return str(address)


def host_port(host: str, port: int) -> str:
    """`host:port`, IPv6 bracketed (`[::]:8080`): listen addresses keep the wildcard."""
    bare = bare_host(host)
    return f"[{bare}]:{port}" if is_ipv6(bare) else f"{bare}:{port}"


def connect_url(scheme: str, host: str, port: int, path: str = "") -> str:
    """A URL a local client can use for a listener bound to `host` on `port`."""
    return f"{scheme}://{host_port(connect_host(host), port)}{path}"
