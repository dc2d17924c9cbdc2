"""Free ports for a stack started with port 0 (on the address family it binds).

A port is picked here and bound later by the process it is handed to. A port from the
kernel's ephemeral range (what `bind(0)` returns) can be taken in between by any outgoing
connection on the machine, and the service then dies with "address already in use". So
ports are picked below that range, where the kernel never assigns one on its own, and each
is handed out once per launcher.

Below that range the other launchers on the machine pick too (every integration test
starts stacks, several engineers and CI share a host), and a port picked here stays unbound
for the seconds its service takes to start (uvicorn binds after the service's start-up):
another launcher could pick it in that window, and whichever service binds second fails.
So a picked port stays *reserved* for as long as this process runs: a socket bound to it
without SO_REUSEADDR (the pick fails if anything at all holds the port, a reservation of
another launcher included), then switched to SO_REUSEADDR so that the service it is for,
which binds with SO_REUSEADDR (uvicorn, asyncio and Go's listeners all do), may bind and
listen on it while everyone else's plain bind still fails. A reservation never listens, so
it takes no connection; it also keeps the port while a crashed service restarts.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

from aisopod_ops.launcher.addresses import connect_host, is_ipv6

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED = 10_000  # above the well-known and most registered service ports
ATTEMPTS = 200

# Port → the socket that reserves it, held until this process exits (None: handed out,
# not held; see `_reserve`).
_reserved: dict[int, socket.socket | None] = {}


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatic ports (Linux's default when it cannot be read)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _reserve(family: socket.AddressFamily, host: str, port: int) -> int | None:
    """Reserve `port` (0: one the kernel chooses) against everyone but a SO_REUSEADDR bind;
    the port, or None when something holds it already."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Without SO_REUSEADDR: fails on any socket bound to the port, listening or not.
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    port = int(sock.getsockname()[1])
    if sys.platform.startswith("linux"):
        # From now on a bind with SO_REUSEADDR (the service's) succeeds; one without fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _reserved[port] = sock
    else:
        # Two SO_REUSEADDR binds of one address and port are Linux's rule; elsewhere
        # (BSD, macOS) the service's own bind would fail: checked free, not held.
        sock.close()
        _reserved[port] = None
    return port


def free_port(host: str = "127.0.0.1") -> int:
    """A free port, reserved for the process it is handed to (see the module's text)."""
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    address = connect_host(host)
    low, _ = ephemeral_range()
    if low - LOWEST_PICKED >= 1_000:
        for _ in range(ATTEMPTS):
            port = random.randrange(LOWEST_PICKED, low)
            if port not in _reserved and _reserve(family, address, port) is not None:
                return port
    # No room below the ephemeral range (a tuned kernel): let the kernel choose.
    chosen = _reserve(family, address, 0)
    if chosen is None:
        raise OSError(f"no free port on {address}")
    return chosen


def pick(port: int, host: str = "127.0.0.1") -> int:
    return port if port else free_port(host)
