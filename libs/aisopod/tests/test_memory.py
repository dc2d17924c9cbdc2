"""After start-up a service collects, freezes and trims its heap (aisopod/memory.py); the
trim is glibc's and is called only on glibc."""

from __future__ import annotations

import ctypes
import gc
import os
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
