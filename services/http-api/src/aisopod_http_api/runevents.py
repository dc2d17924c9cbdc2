"""Run events for the requests that wait on them: one NATS subscription, many listeners.

The process subscribes (core NATS) to `chat.event` while any request listens, and hands
each event to the listeners registered for its `sessionKey`. A request registers BEFORE
it starts its run (so no event can be missed; `listen` returns once the subscription is
in place, subscribed and flushed when it was not), learns the `runId` from the RPC
reply, and from then on sees only that run's events. The NATS callback never
waits: it appends to the listener's buffer (bounded: a listener that stops reading is cut
off, never the others). `agent.event` is not subscribed to: nothing here reads it (a
turn's lifecycle, assistant text and tool events would all be received to be dropped).

With nobody listening the subscription goes, `LINGER_S` after the last listener left (so
steady /v1 traffic keeps it and pays nothing per request): every agent turn publishes its
events whoever started it, and a process subscribed for good received each of them, the
turns of WebSocket clients included, to drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order

log = logging.getLogger("aisopod.http_api.events")

CHAT = "chat.event"
MAX_BUFFERED = 10_000
LINGER_S = 30.0
"""How long the subscription outlives its last listener."""
FLUSH_TIMEOUT_S = 1


@dataclass(frozen=True, slots=True)
class RunEvent:
    name: str  # chat.event
    payload: dict[str, Any]


class Listener:
    def __init__(self, session_key: str) -> None:
        self.session_key = session_key
        self.run_id: str | None = None
        self.overflowed = False
        self._events: deque[RunEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def push(self, event: RunEvent) -> None:
        if len(self._events) >= MAX_BUFFERED:
            self.overflowed = True
        else:
            self._events.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self) -> RunEvent:
        """The next event of this listener's run (events of other runs are skipped)."""
        while True:
            while self._events:
                event = self._events.popleft()
                if self.run_id is None or event.payload.get("runId") == self.run_id:
                    return event
            if self.overflowed:
                raise OverflowError("run events overflowed this listener")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class RunEvents:
    def __init__(self, bus: Bus, linger_s: float = LINGER_S) -> None:
        self.bus = bus
        self.linger_s = linger_s
        self._listeners: dict[str, set[Listener]] = {}
        self._subs: list[Subscription] = []
        self._lock = asyncio.Lock()
        self._idle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def subscribed(self) -> bool:
        return bool(self._subs)

    async def start(self) -> None:
        """Nothing to do until a request listens (kept for the service's lifecycle)."""

    async def stop(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        async with self._lock:
            await self._unsubscribe()

    async def _subscribe(self) -> None:
        async with self._lock:
            if self._subs:
                return
            nc = self.bus.nc
            sub = await nc.subscribe(self.bus.subjects.evt(CHAT), cb=self._handler(CHAT))
            # Written before the request that starts the run, on the same connection, the
            # subscription is in place when the run's events come; the flush makes it sure
            # before the first request relies on it (bounded: NATS down, the request says so).
            with contextlib.suppress(Exception):
                await flush_in_order(nc, FLUSH_TIMEOUT_S)
            # Only now: a listener arriving meanwhile waits for the lock, not for less.
            self._subs = [sub]

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be closing
                log.debug("unsubscribe failed", exc_info=True)

    def _left(self) -> None:
        """The last listener left: unsubscribe after the linger unless one comes back."""
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(self.linger_s, self._linger_over)

    def _linger_over(self) -> None:
        self._idle = None
        if self._listeners or not self._subs:
            return
        task = asyncio.ensure_future(self._drop_if_idle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_if_idle(self) -> None:
        async with self._lock:
            if not self._listeners:  # one may have come while the lock was held
                await self._unsubscribe()

    def _handler(self, name: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            if not self._listeners:
                return  # nobody waits: not even worth decoding
            try:
                payload = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return
            if not isinstance(payload, dict):
                return
            listeners = self._listeners.get(str(payload.get("sessionKey", "")))
            if listeners:
                event = RunEvent(name, payload)
                for listener in listeners:
                    listener.push(event)

        return on_message

    @asynccontextmanager
    async def listen(self, session_key: str) -> AsyncIterator[Listener]:
        """A listener of the session's events, subscribed when this returns."""
        listener = Listener(session_key)
        self._listeners.setdefault(session_key, set()).add(listener)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        try:
            if not self._subs:
                await self._subscribe()
            yield listener
        finally:
            group = self._listeners.get(session_key)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[session_key]
            if not self._listeners:
                self._left()
