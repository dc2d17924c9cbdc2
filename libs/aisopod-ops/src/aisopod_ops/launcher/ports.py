"""Free loopback ports for a stack started with port 0."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pick(port: int, host: str = "127.0.0.1") -> int:
    return port if port else free_port(host)
