"""Ports picked for a stack: bindable, distinct, and never from the kernel's ephemeral range
(where any outgoing connection could take one before its service binds it)."""

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
        with socket.socket() as sock:
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
