"""A part that runs only while something uses it: started by the first use, stopped
`idle_s` after the last one (and never while a holder holds it).

Subscriptions that follow a stream or a KV bucket cost every process that runs them one
delivery per message, whoever reads what they keep. A copy kept for occasional reads, or a
consumer that feeds only connected clients, runs through `OnDemand` instead: the runtime's
session copy, http-api's `/status` sessions replica and ws-gateway's edge reads and event
fan-out (docs/runtime.md, docs/http-api.md, docs/ws-gateway.md).

- `use()`: a read. Starts the part when it is not running and returns it when it has
  started, else None (the caller answers another way meanwhile, e.g. the owner).
- `hold(key)` / `release(key)`: something that needs the part for as long as it lasts (a
  client connection); the idle time counts from the last release.
- `await ready()`: a use that waits until the part has started (it raises what the start
  raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("aisopod.ondemand")

P = TypeVar("P")

IDLE_S = 300.0
"""How long a part outlives its last use unless told otherwise (five minutes)."""
STOP_WAIT_S = 2.0


class OnDemand(Generic[P]):
    def __init__(
        self,
        name: str,
        start: Callable[[], Awaitable[P]],
        stop: Callable[[P], Awaitable[None]],
        *,
        idle_s: float = IDLE_S,
    ) -> None:
        self.name = name
        self._idle_s = idle_s
        self._start = start
        self._stop = stop
        self.part: P | None = None
        """The running part (None while stopped or starting)."""
        self._used_at = 0.0
        self._holders: set[str] = set()
        self._keeper: asyncio.Task[None] | None = None
        self._started: asyncio.Future[P] | None = None
        self._wake = asyncio.Event()
        self.starts = 0
        """How many times the part was started (for tests and metrics)."""

    @property
    def idle_s(self) -> float:
        return self._idle_s

    @idle_s.setter
    def idle_s(self, value: float) -> None:
        """Takes effect at once, also for a running part (a test, or a changed setting)."""
        self._idle_s = value
        self._wake.set()

    @property
    def active(self) -> bool:
        """Running or starting."""
        return self._keeper is not None

    @property
    def running(self) -> bool:
        return self.part is not None

    @property
    def holders(self) -> int:
        return len(self._holders)

    def use(self) -> P | None:
        self._used_at = time.monotonic()
        if self._keeper is None:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            # A failed start nobody waited for is logged below, not as "never retrieved".
            self._started.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._keeper = loop.create_task(self._keep(self._started), name=f"keep-{self.name}")
        return self.part

    async def ready(self) -> P:
        part = self.use()
        if part is not None:
            return part
        assert self._started is not None
        return await asyncio.shield(self._started)

    def hold(self, key: str) -> None:
        self._holders.add(key)
        self.use()

    def release(self, key: str) -> None:
        if key in self._holders:
            self._holders.discard(key)
            self._used_at = time.monotonic()
            self._wake.set()

    async def close(self) -> None:
        """Stop the part now (the service is stopping); a later use starts it again."""
        keeper, self._keeper = self._keeper, None
        self._holders.clear()
        if keeper is not None:
            keeper.cancel()
            await asyncio.wait({keeper}, timeout=STOP_WAIT_S)

    async def _keep(self, started: asyncio.Future[P]) -> None:
        part: P | None = None
        try:
            part = await self._start()
            self.starts += 1
            self.part = part
            started.set_result(part)
            while True:
                idle = time.monotonic() - self._used_at
                if not self._holders and idle >= self.idle_s:
                    break
                self._wake.clear()
                wait = self.idle_s - idle if not self._holders else self.idle_s
                # A release wakes it early: the idle time then counts from the release.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))
        except asyncio.CancelledError:
            if not started.done():
                started.cancel()
            raise
        except Exception as exc:  # the next use tries again
            log.warning("starting %s failed", self.name, exc_info=True)
            if not started.done():
                started.set_exception(exc)
        finally:
            if self._keeper is asyncio.current_task():
                self._keeper = None
            if self._started is started:
                self._started = None
            if part is not None:
                if self.part is part:
                    self.part = None
                await self._stop(part)
