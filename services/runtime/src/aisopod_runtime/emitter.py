"""The events of one run: `chat.event` and `agent.event`, in order, deltas throttled.

- Payloads are the shared models of `aisopod.catalogue.run_events`, sent as their `wire()`
  form (only the fields set here).
- `chat.event` `{runId, sessionKey, seq, state, message?, usage?, errorMessage?}`. A
  `delta` carries the whole text so far in `message.content` plus the new part in
  `delta`: deltas may be dropped for a slow client, so each one stands alone. At most one
  delta per `THROTTLE_S` per run; `final` carries the full message and usage, so text not
  yet sent as a delta when the answer completes goes out with `final` only (an instant
  answer has no delta at all). A model step that called tools is not in `final`: its
  unsent text goes out as a delta when the step ends (`step_done`).
- `agent.event` `{runId, sessionKey, seq, stream, data}`: `lifecycle` (start/end/error/
  aborted), `assistant` (text so far and the new part, throttled with the deltas),
  `tool` (start/result/error; the ws-gateway sends these only to the originating
  connection, named by the `Aisopod-Origin-Conn` header), `error`.
- `seq` counts per run and per event name: 1, 2, 3…
- Events are pipelined, in order: each is written to the connection after every event
  queued before it, without waiting for their acks, so a turn never waits on a delta's
  ack (a real model streams on meanwhile; an instant answer's delta overlaps the
  transcript write). An event of one name is sent only once the previous event of that
  name is stored, so a retried event never lands behind a later one of its name. The
  terminal events (`final`, `aborted`, `error`, lifecycle end) return once stored.
- Events are numbered when they are asked for, never after a wait: the `post_*` forms
  queue at once and return the future of the store, so a caller that posts the terminal
  event and then the lifecycle end gets them in that order, whatever it awaits them with.
- A publish that fails on the bus (NATS restarting) is retried for up to `RETRY_S` with
  the same `Nats-Msg-Id`, which JetStream de-duplicates: an event whose ack was lost with
  the connection is not stored twice, and one that never arrived is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from nats.errors import Error as NatsError

from aisopod.bus import Bus
from aisopod.catalogue.run_events import (
    AGENT_EVENT,
    CHAT_EVENT,
    AgentEvent,
    AgentStream,
    ChatEvent,
    EventMessage,
    RunUsage,
)
from aisopod.principal import H_ORIGIN_CONN

log = logging.getLogger("aisopod.runtime.emitter")

THROTTLE_S = 0.1
RETRY_S = 30.0  # a NATS restart takes seconds; the EVENTS stream de-duplicates for 120 s
ACK_TIMEOUT_S = 5.0
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
        self._seq = {CHAT_EVENT: 0, AGENT_EVENT: 0}
        self._last_flush = 0.0
        # A scheduled flush: a loop callback rather than a task (an answer that completes
        # before the model's stream waits, the echo provider's, cancels it unrun).
        self._timer: asyncio.Handle | None = None
        self._closed = False
        self._last_sent: asyncio.Future[None] | None = None
        """Written to the connection: the next event is sent after it (send order)."""
        self._last: dict[str, asyncio.Future[None]] = {}
        """The last event of each name: the next one of that name waits until it is stored."""

    @property
    def seq(self) -> int:
        """The highest seq published so far (kept in the run record as a checkpoint)."""
        return max(self._seq.values())

    def start_at(self, seq: int) -> None:
        """Continue numbering after `seq` (a reaper ending a run it does not hold)."""
        self._seq = dict.fromkeys(self._seq, seq)

    def _post(self, event: str, **fields: Any) -> asyncio.Future[None]:
        """Queue one event (numbered now, in call order); the future ends once it is stored."""
        self._seq[event] += 1
        seq = self._seq[event]
        model = ChatEvent if event == CHAT_EVENT else AgentEvent
        body = model(run_id=self.run_id, session_key=self.session_key, seq=seq, **fields).wire()
        headers = self.headers | {H_MSG_ID: f"{self._ids}:{event}:{seq}"}
        sent = asyncio.get_running_loop().create_future()
        previous_sent, self._last_sent = self._last_sent, sent
        task = asyncio.ensure_future(
            self._deliver(event, body, headers, previous_sent, self._last.get(event), sent)
        )
        self._last[event] = task
        task.add_done_callback(self._delivered)
        return task

    def _delivered(self, task: asyncio.Future[None]) -> None:
        # An event nobody awaits (a delta, lifecycle start) that could not be stored in
        # RETRY_S is logged here; the terminal events still carry the whole run.
        if not task.cancelled() and task.exception() is not None:
            log.warning("run %s: an event was not published: %r", self.run_id, task.exception())

    async def _deliver(
        self,
        event: str,
        body: dict[str, Any],
        headers: dict[str, str],
        previous_sent: asyncio.Future[None] | None,
        previous_same: asyncio.Future[None] | None,
        sent: asyncio.Future[None],
    ) -> None:
        try:
            if previous_same is not None:
                await asyncio.wait([previous_same])  # its failure is its own (logged)
            if previous_sent is not None:
                await previous_sent
            try:
                ack: asyncio.Future[Any] | None = await self.bus.send_event(event, body, headers)
            except (NatsError, TimeoutError) as exc:
                ack = None
                self._warn("not sent", event, body, exc)
            finally:
                if not sent.done():
                    sent.set_result(None)
            if ack is not None:
                try:
                    await asyncio.wait_for(ack, ACK_TIMEOUT_S)
                    return
                except (NatsError, TimeoutError) as exc:
                    self._warn("not acked", event, body, exc)
            await self._retry(event, body, headers)
        finally:
            if not sent.done():
                sent.set_result(None)

    def _warn(self, what: str, event: str, body: dict[str, Any], exc: BaseException) -> None:
        log.warning("run %s: %s %s %s (%r); retrying", self.run_id, event, body["seq"], what, exc)

    async def _retry(self, event: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        deadline = time.monotonic() + RETRY_S
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                await self.bus.publish_event(event, body, headers=headers)
                return
            except (NatsError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise
                self._warn("not published", event, body, exc)

    async def agent(self, stream: AgentStream, data: dict[str, Any]) -> None:
        """An agent.event, stored when this returns."""
        await self._post(AGENT_EVENT, stream=stream, data=data)

    def post_agent(self, stream: AgentStream, data: dict[str, Any]) -> asyncio.Future[None]:
        """An agent.event, numbered and queued now, in order with every other event; the
        future (which nobody needs to await) ends once it is stored."""
        return self._post(AGENT_EVENT, stream=stream, data=data)

    async def lifecycle(self, phase: str, **data: Any) -> None:
        await self.agent("lifecycle", {"phase": phase, **data})

    def post_lifecycle(self, phase: str, **data: Any) -> asyncio.Future[None]:
        return self.post_agent("lifecycle", {"phase": phase, **data})

    def post_tool(self, phase: str, call_id: str, name: str, **data: Any) -> None:
        self.post_agent("tool", {"toolCallId": call_id, "name": name, "phase": phase, **data})

    async def add_text(self, chunk: str) -> None:
        """Take a piece of the answer; publish it soon (the next time the model's stream
        waits), or within THROTTLE_S of the last delta.

        Not at once: an answer that is complete before the stream ever waits (the echo
        provider, a cached reply) needs no delta, its final event carries the text.
        """
        self.text += chunk
        if self._closed or self._timer is not None:
            return
        wait = self._last_flush + THROTTLE_S - time.monotonic()
        loop = asyncio.get_running_loop()
        if wait > 0:
            self._timer = loop.call_later(wait, self._flush_scheduled)
        else:
            self._timer = loop.call_soon(self._flush_scheduled)

    async def text_done(self) -> None:
        """The answer is complete (the last model step, the one without tool calls): a delta
        not sent yet is dropped, because the final event that follows carries this step's
        whole text. A step that called tools ends with `step_done` instead."""
        self._close()

    def step_done(self) -> None:
        """A model step that called tools is over: the part of its text not yet sent as a
        delta goes out now, before the tool events. Nothing later carries that text: the
        final event holds the last step's answer only, and `reset_text` starts the next
        step's deltas from empty (a flush left scheduled would fire after it, with the
        next step's text)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush()

    def reset_text(self) -> None:
        """A new model step begins: the text of the next answer starts empty."""
        self.text = ""
        self._sent_upto = 0

    def _flush_scheduled(self) -> None:
        self._timer = None
        self._flush()

    def _flush(self) -> None:
        if self._closed or self._sent_upto >= len(self.text):
            return
        delta = self.text[self._sent_upto :]
        self._sent_upto = len(self.text)
        self._last_flush = time.monotonic()
        message = EventMessage(role="assistant", content=self.text)
        self._post(CHAT_EVENT, state="delta", message=message, delta=delta)
        self.post_agent("assistant", {"text": self.text, "delta": delta})

    def _close(self) -> None:
        """No delta from now on. A flush still scheduled is cancelled, not awaited: it would
        find the emitter closed and send nothing anyway, and not yielding here is what lets
        a terminal event be numbered and queued the moment it is asked for, in call order
        (before a lifecycle end asked for right after it)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()

    def post_final(
        self, text: str, usage: RunUsage | None, message_id: str | None
    ) -> asyncio.Future[None]:
        """The `final` chat.event, numbered and queued now; the future ends once it is stored."""
        self._close()
        message = EventMessage(role="assistant", content=text)
        if message_id:
            message.id = message_id
        return self._post(CHAT_EVENT, state="final", message=message, usage=usage)

    async def final(self, text: str, usage: RunUsage | None, message_id: str | None) -> None:
        await self.post_final(text, usage, message_id)

    def post_aborted(self, partial: str) -> asyncio.Future[None]:
        """The `aborted` chat.event, numbered and queued now; ends once it is stored."""
        self._close()
        message = EventMessage(role="assistant", content=partial)
        return self._post(CHAT_EVENT, state="aborted", message=message)

    async def aborted(self, partial: str) -> None:
        await self.post_aborted(partial)

    def post_error(self, message: str, partial: str = "") -> asyncio.Future[Any]:
        """The `error` agent.event and `error` chat.event, numbered and queued now; the
        future ends once both are stored."""
        self._close()
        failed = self._post(AGENT_EVENT, stream="error", data={"message": message})
        if partial:
            ended = self._post(
                CHAT_EVENT,
                state="error",
                error_message=message,
                message=EventMessage(role="assistant", content=partial),
            )
        else:
            ended = self._post(CHAT_EVENT, state="error", error_message=message)
        return asyncio.gather(failed, ended)

    async def error(self, message: str, partial: str = "") -> None:
        await self.post_error(message, partial)
