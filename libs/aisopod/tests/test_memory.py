"""After start-up a service collects, freezes and trims its heap (aisopod/memory.py); the
trim is glibc's and is called only on glibc."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from aisopod import memory


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every malloc_trim the C library is asked for, with its argument (not performed)."""
    recorded: list[int] = []

    class FakeLibc:
        def malloc_trim(self, pad: int) -> int:
            recorded.append(pad)
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda _name: FakeLibc())
    return recorded


@pytest.fixture
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_trim_is_called_on_glibc(monkeypatch: pytest.MonkeyPatch, calls: list[int]) -> None:
    monkeypatch.setattr(os, "confstr", lambda _name: "glibc 2.36")
    assert memory.malloc_trim() is True
    assert calls == [0]


@pytest.mark.parametrize("libc", [None, "musl", ValueError("unknown name")])
def test_trim_is_not_called_without_glibc(
    monkeypatch: pytest.MonkeyPatch, calls: list[int], libc: Any
) -> None:
    def confstr(_name: str) -> str | None:
        if isinstance(libc, Exception):
            raise libc
        return libc

    monkeypatch.setattr(os, "confstr", confstr)
    assert memory.glibc_version() is None
    assert memory.malloc_trim() is False
    assert calls == []


@pytest.mark.skipif(memory.glibc_version() is None, reason="glibc's malloc_trim")
def test_real_trim_on_this_glibc(unfreeze: None) -> None:
    assert memory.settle_after_start() is True
    assert gc.get_freeze_count() > 0  # start-up's survivors are out of the collector's way


class Clock:
    """A process CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 5.0

    def __call__(self) -> float:
        return self.now


def idle_settle(clock: Clock, settled: list[float]) -> memory.IdleSettle:
    return memory.IdleSettle(
        quiet_cpu_s=0.05, busy_cpu_s=1.0, cpu_clock=clock, settle=lambda: settled.append(clock.now)
    )


def test_idle_settle_waits_for_work_then_for_quiet() -> None:
    clock, settled = Clock(), []
    watcher = idle_settle(clock, settled)
    assert watcher.check() is False  # quiet, but no work since start: nothing to give back
    clock.now += 0.6
    assert watcher.check() is False  # busy
    clock.now += 0.6
    assert watcher.check() is False  # still busy (1.2 s of work so far)
    clock.now += 0.01
    assert watcher.check() is True  # quiet after work: settles once
    assert settled == [pytest.approx(6.21)]
    clock.now += 0.01
    assert watcher.check() is False  # quiet, but no new work since the settle
    assert watcher.settles == 1


def test_idle_settle_never_runs_during_load() -> None:
    clock, settled = Clock(), []
    watcher = idle_settle(clock, settled)
    for _ in range(50):
        clock.now += 0.3  # 3 % of a core for ever: never quiet
        assert watcher.check() is False
    assert settled == []


def test_the_settles_own_cpu_is_not_work() -> None:
    clock, settled = Clock(), []

    def costly_settle() -> None:
        settled.append(clock.now)
        clock.now += 2.0  # a long collection

    watcher = memory.IdleSettle(
        quiet_cpu_s=0.05, busy_cpu_s=1.0, cpu_clock=clock, settle=costly_settle
    )
    clock.now += 1.5
    watcher.check()
    assert watcher.check() is True
    assert watcher.check() is False  # neither busy (its CPU) nor owed a second settle
    assert len(settled) == 1


@pytest.mark.skipif(memory.glibc_version() is None, reason="glibc's malloc_trim")
def test_settle_after_use_collects_cycles_and_trims() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.disable()
    try:
        cycle = weakref.ref(Node())  # garbage only the collector frees
        assert cycle() is not None
        assert memory.settle_after_use() is True
        assert cycle() is None
    finally:
        gc.enable()


async def test_one_idle_settle_per_process() -> None:
    first = memory.start_idle_settle()
    try:
        assert first is not None
        assert memory.start_idle_settle() is None  # a second host in this process shares it
    finally:
        assert first is not None
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
    again = memory.start_idle_settle()
    assert again is not None  # once its owner stopped it, the next host starts its own
    again.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await again
