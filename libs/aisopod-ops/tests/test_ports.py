"""Ports picked for a stack: bindable by their service, distinct, never from the kernel's
ephemeral range (where any outgoing connection could take one before its service binds it),
and reserved against other launchers until their service binds them."""

from __future__ import annotations

import socket

import pytest

from aisopod_ops.launcher import ports
from aisopod_ops.launcher.ports import LOWEST_PICKED, ephemeral_range, free_port, pick


def test_picked_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    assert 0 < low <= high
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    for port in ports:
        if low - LOWEST_PICKED >= 1_000:
            assert LOWEST_PICKED <= port < low
        with socket.socket() as sock:  # as the service it is for binds it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    low, _ = ephemeral_range()
    if low - LOWEST_PICKED < 1_000:
        pytest.skip("no room below this kernel's ephemeral range")
    with socket.socket() as below:
        for port in range(LOWEST_PICKED + 500, low):
            try:
                below.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        below.listen()
        taken = below.getsockname()[1]
        # The first candidate offered is the port something listens on.
        offers = iter([taken, taken + 1, taken + 2, taken + 3])
        monkeypatch.setattr(ports.random, "randrange", lambda *_: next(offers))
        picked = free_port()
        assert picked != taken and picked in (taken + 1, taken + 2, taken + 3)


def test_an_explicit_port_is_kept() -> None:
    assert pick(8123) == 8123


def test_a_port_another_launcher_picked_is_skipped_before_its_service_binds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two launchers pick at once (concurrent test stacks): the second must not get a port
    the first handed to a service that has not bound it yet (it binds after its start-up)."""
    picked = free_port()
    # Another launcher: a process of its own (nothing handed out yet), offered that port first.
    monkeypatch.setattr(ports, "_reserved", {})
    offers = iter([picked, picked + 1, picked + 2, picked + 3])
    monkeypatch.setattr(ports.random, "randrange", lambda *_: next(offers))
    assert free_port() != picked


def test_the_service_binds_its_reserved_port_and_nobody_else_does() -> None:
    port = free_port()
    with socket.socket() as service:  # binds like uvicorn, asyncio and Go servers do
        service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        service.bind(("127.0.0.1", port))
        service.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # the reservation takes no connection: the service's listener does
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))  # a plain bind: still reserved after the service
