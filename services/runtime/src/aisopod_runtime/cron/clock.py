"""Time for the scheduler, injectable: tests drive a manual clock instead of waiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        """Return after `seconds`, or earlier once `wake` is set."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=max(seconds, 0.0))


class ManualClock:
    """A clock that moves only when told; sleepers wake on every move."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._moved = asyncio.Event()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        moved = self._moved
        waiters = {asyncio.ensure_future(moved.wait()), asyncio.ensure_future(wake.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
