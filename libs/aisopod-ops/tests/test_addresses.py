"""The launcher's address helper (launcher/addresses.py): listen vs connect addresses."""

from __future__ import annotations

import pytest

from aisopod_ops.launcher.addresses import (
    bare_host,
    connect_host,
    connect_url,
    host_port,
    is_ipv6,
)


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("[::]", "::1"),
        ("0:0:0:0:0:0:0:0", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("192.168.1.20", "192.168.1.20"),
        ("fd00::2", "fd00::2"),
        ("localhost", "localhost"),
    ],
)
def test_connect_host_replaces_a_wildcard_with_the_loopback_of_its_family(
    bind: str, expected: str
) -> None:
    assert connect_host(bind) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "0.0.0.0:80"),
        ("::", "[::]:80"),
        ("[::1]", "[::1]:80"),
        ("::1", "[::1]:80"),
        ("localhost", "localhost:80"),
    ],
)
def test_host_port_brackets_ipv6_and_keeps_the_wildcard(host: str, expected: str) -> None:
    assert host_port(host, 80) == expected


def test_connect_url() -> None:
    assert connect_url("http", "::", 8080, "/health") == "http://[::1]:8080/health"
    assert connect_url("nats", "0.0.0.0", 4222) == "nats://127.0.0.1:4222"
    assert connect_url("ws", "127.0.0.1", 80, "/ws") == "ws://127.0.0.1:80/ws"
    assert connect_url("https", "fd00::2", 8443) == "https://[fd00::2]:8443"


def test_is_ipv6_and_bare_host() -> None:
    assert is_ipv6("::1") and is_ipv6("[::]")
    assert not is_ipv6("0.0.0.0") and not is_ipv6("localhost")
    assert bare_host("[::1]") == "::1" and bare_host("::1") == "::1"
