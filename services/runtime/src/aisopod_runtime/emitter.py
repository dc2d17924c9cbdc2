"""The events of one run: `chat.event` and `agent.event`, in order, deltas throttled.

- `chat.event` `{runId, sessionKey, seq, state, message?, usage?, errorMessage?}`. A
  `delta` carries the whole text so far in `message.content` plus the new part in
  `delta`: deltas may be dropped for a slow client, so each one stands alone. At most one
  delta per `THROTTLE_S` per run; `final` carries the full message and usage.
- `agent.event` `{runId, sessionKey, seq, stream, data}`: `lifecycle` (start/end/error/
  aborted), `assistant` (text so far and the new part, throttled with the deltas),
  `tool` (start/result/error; the ws-gateway sends these only to the originating
  connection, named by the `Aisopod-Origin-Conn` header), `error`.
- `seq` counts per run and per event name: 1, 2, 3…
- A publish that fails on the bus (NATS restarting) is retried for up to `RETRY_S` with
  the same `Nats-Msg-Id`, which JetStream de-duplicates: an event whose ack was lost with
  the connection is not stored twice, and one that never arrived is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from nats.errors import Error as NatsError

from aisopod.bus import Bus
from aisopod.principal import H_ORIGIN_CONN

log = logging.getLogger("aisopod.runtime.emitter")

THROTTLE_S = 0.1
RETRY_S = 30.0  # a NATS restart takes seconds; the EVENTS stream de-duplicates for 120 s
H_MSG_ID = "Nats-Msg-Id"


class RunEmitter:
    def __init__(self, bus: Bus, run_id: str, session_key: str, origin_conn: str | None) -> None:
        self.bus = bus
        self.run_id = run_id
        self.session_key = session_key
        self.headers = {H_ORIGIN_CONN: origin_conn} if origin_conn else {}
        # Message ids are per emitter: a reaper's emitter for the same run numbers on from
        # a checkpoint and must not collide with ids the lost runtime already used.
        self._ids = f"{run_id}:{uuid.uuid4().hex[:8]}"
        self.text = ""
        self._sent_upto = 0
        self._seq = {"chat.event": 0, "agent.event": 0}
        self._last_flush = 0.0
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def seq(self) -> int:
        """The highest seq published so far (kept in the run record as a checkpoint)."""
        return max(self._seq.values())

    def start_at(self, seq: int) -> None:
        """Continue numbering after `seq` (a reaper ending a run it does not hold)."""
        self._seq = dict.fromkeys(self._seq, seq)

    async def _publish(self, event: str, payload: dict[str, Any]) -> None:
        self._seq[event] += 1
        seq = self._seq[event]
        body = {"runId": self.run_id, "sessionKey": self.session_key, "seq": seq}
        headers = self.headers | {H_MSG_ID: f"{self._ids}:{event}:{seq}"}
        deadline = time.monotonic() + RETRY_S
        delay = 0.05
        while True:
            try:
                await self.bus.publish_event(event, body | payload, headers=headers)
                return
            except (NatsError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning(
                    "run %s: %s %s not published (%r); retrying", self.run_id, event, seq, exc
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def agent(self, stream: str, data: dict[str, Any]) -> None:
        async with self._lock:
            await self._publish("agent.event", {"stream": stream, "data": data})

    async def lifecycle(self, phase: str, **data: Any) -> None:
        await self.agent("lifecycle", {"phase": phase, **data})

    async def tool(self, phase: str, call_id: str, name: str, **data: Any) -> None:
        await self.agent("tool", {"toolCallId": call_id, "name": name, "phase": phase, **data})

    async def add_text(self, chunk: str) -> None:
        """Take a piece of the answer; publish now or within THROTTLE_S."""
        self.text += chunk
        if self._closed:
            return
        wait = self._last_flush + THROTTLE_S - time.monotonic()
        if wait <= 0:
            await self._flush()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(wait))

    def reset_text(self) -> None:
        """A new model step begins: the text of the next answer starts empty."""
        self.text = ""
        self._sent_upto = 0

    async def _flush_later(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._timer = None
        await self._flush()

    async def _flush(self) -> None:
        async with self._lock:
            if self._closed or self._sent_upto >= len(self.text):
                return
            delta = self.text[self._sent_upto :]
            self._sent_upto = len(self.text)
            self._last_flush = time.monotonic()
            message = {"role": "assistant", "content": self.text}
            await self._publish(
                "chat.event", {"state": "delta", "message": message, "delta": delta}
            )
            await self._publish(
                "agent.event", {"stream": "assistant", "data": {"text": self.text, "delta": delta}}
            )

    async def _close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def final(self, text: str, usage: dict[str, int] | None, message_id: str | None) -> None:
        await self._close()
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if message_id:
            message["id"] = message_id
        async with self._lock:
            await self._publish(
                "chat.event", {"state": "final", "message": message, "usage": usage}
            )

    async def aborted(self, partial: str) -> None:
        await self._close()
        async with self._lock:
            await self._publish(
                "chat.event",
                {"state": "aborted", "message": {"role": "assistant", "content": partial}},
            )

    async def error(self, message: str, partial: str = "") -> None:
        await self._close()
        async with self._lock:
            await self._publish("agent.event", {"stream": "error", "data": {"message": message}})
            payload: dict[str, Any] = {"state": "error", "errorMessage": message}
            if partial:
                payload["message"] = {"role": "assistant", "content": partial}
            await self._publish("chat.event", payload)
