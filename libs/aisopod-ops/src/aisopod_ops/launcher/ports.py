"""Free ports for a stack started with port 0 (on the address family it binds)."""

from __future__ import annotations

import socket

from aisopod_ops.launcher.addresses import connect_host, is_ipv6


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if is_ipv6(host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((connect_host(host), 0))
        return int(sock.getsockname()[1])


def pick(port: int, host: str = "127.0.0.1") -> int:
    return port if port else free_port(host)
