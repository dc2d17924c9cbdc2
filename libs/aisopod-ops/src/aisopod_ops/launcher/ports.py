"""Free ports for a stack started with port 0 (on the address family it binds).

A port is picked here and bound later by the process it is handed to. A port from the
kernel's ephemeral range (what `bind(0)` returns) can be taken in between by any outgoing
connection on the machine, and the service then dies with "address already in use". So
ports are picked below that range, where the kernel never assigns one on its own, and each
is handed out once per launcher.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

from aisopod_ops.launcher.addresses import connect_host, is_ipv6

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED = 10_000  # above the well-known and most registered service ports
ATTEMPTS = 200

_handed_out: set[int] = set()


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for automatic ports (Linux's default when it cannot be read)."""
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(family: socket.AddressFamily, host: str, port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    address = connect_host(host)
    low, _ = ephemeral_range()
    if low - LOWEST_PICKED >= 1_000:
        for _ in range(ATTEMPTS):
            port = random.randrange(LOWEST_PICKED, low)
            if port not in _handed_out and _bindable(family, address, port):
                _handed_out.add(port)
                return port
    # No room below the ephemeral range (a tuned kernel): let the kernel choose.
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port = int(sock.getsockname()[1])
    _handed_out.add(port)
    return port


def pick(port: int, host: str = "127.0.0.1") -> int:
    return port if port else free_port(host)
