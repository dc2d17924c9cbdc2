"""Run events for the requests that wait on them: one NATS subscription, many listeners.

Each process subscribes once (core NATS) to `chat.event` and `agent.event` and hands each
event to the listeners registered for its `sessionKey`. A request registers BEFORE it
starts its run (so no event can be missed), learns the `runId` from the RPC reply, and from
then on sees only that run's events. The NATS callback never waits: it appends to the
listener's buffer (bounded: a listener that stops reading is cut off, never the others).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aisopod.bus import Bus

log = logging.getLogger("aisopod.http_api.events")

CHAT = "chat.event"
AGENT = "agent.event"
MAX_BUFFERED = 10_000


@dataclass(frozen=True, slots=True)
class RunEvent:
    name: str  # chat.event | agent.event
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
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._listeners: dict[str, set[Listener]] = {}
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        for name in (CHAT, AGENT):
            subject = self.bus.subjects.evt(name)
            self._subs.append(await self.bus.nc.subscribe(subject, cb=self._handler(name)))
        await self.bus.nc.flush()  # subscribed before the first request may rely on it

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:  # the connection may already be closing
                log.debug("unsubscribe failed", exc_info=True)
        self._subs.clear()

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

    @contextmanager
    def listen(self, session_key: str) -> Iterator[Listener]:
        listener = Listener(session_key)
        self._listeners.setdefault(session_key, set()).add(listener)
        try:
            yield listener
        finally:
            group = self._listeners.get(session_key)
            if group is not None:
                group.discard(listener)
                if not group:
                    del self._listeners[session_key]
