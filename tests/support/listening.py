"""Where processes listen, read from /proc (no psutil): the TCP sockets in LISTEN state
that a process holds open, as (address, port)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from pathlib import Path

_LISTEN = "0A"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed between the listing and the read
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port_hex, 16)


def listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs on which `pid` accepts TCP connections."""
    inodes = _socket_inodes(pid)
    found: set[tuple[str, int]] = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and fields[9] in inodes:
                found.add(_address(fields[1]))
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (a launcher's children, their workers)."""
    out = [pid]
    index = 0
    while index < len(out):
        children = Path(f"/proc/{out[index]}/task/{out[index]}/children")
        if children.exists():
            out += [int(c) for c in children.read_text().split()]
        index += 1
    return out


def non_loopback_addresses() -> list[str]:
    """This machine's own addresses that are not loopback (`hostname -I`), IPv4 first."""
    result = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    addresses = [a for a in result.stdout.split() if not ipaddress.ip_address(a).is_loopback]
    return sorted(addresses, key=lambda a: ":" in a)


def connectable(address: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to address:port is accepted."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError:
            return False
    return True
