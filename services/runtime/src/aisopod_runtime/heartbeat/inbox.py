"""Each session's queued system events, in KV `heartbeat` under `q.<escaped session key>`.

`push` appends (compare-and-set, so two replicas never drop each other's event); the
session's next turn — a heartbeat, a wake, any message — calls `deliver` while it holds
the session's lane: the events become one `system` message in the transcript, just before
the turn's own message, and only then leave the queue (compare-and-set on what was read,
so an event queued meanwhile stays for the turn after). A crash between the two repeats
the events on the next turn rather than losing them.

Bounded per session (`MAX_EVENTS`, `MAX_BYTES`): a full queue refuses with CONFLICT
`SYSTEM_EVENTS_FULL` instead of silently dropping old events.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.js.errors import BadRequestError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import Field

from aisopod import codec
from aisopod.errors import Conflict
from aisopod.wire import WireModel
from aisopod_runtime.kvview import get_json, kv_token
from aisopod_runtime.transcripts import new_message

MAX_EVENTS = 50
MAX_BYTES = 256 * 1024
CAS_ATTEMPTS = 32
LABEL = "system-event"
WRONG_LAST_SEQUENCE = 10071


class QueuedEvent(WireModel):
    id: str
    text: str
    ts: int
    source: str


class Queue(WireModel):
    events: list[QueuedEvent] = Field(default_factory=list)


def queue_key(session_key: str) -> str:
    return f"q.{kv_token(session_key)}"


def render(events: list[QueuedEvent]) -> str:
    """The system message a turn's model sees in front of the turn's own message."""
    lines = ["System events queued for this session since its last turn:"]
    for event in events:
        when = datetime.fromtimestamp(event.ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"- [{when}] ({event.source}) {event.text}")
    return "\n".join(lines)


class SystemEventInbox:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def _read(self, session_key: str) -> tuple[Queue, int | None]:
        found = await get_json(self.kv, queue_key(session_key))
        if found is None:
            return Queue(), None
        value, revision = found
        return Queue.model_validate(value), revision

    async def _write(self, session_key: str, queue: Queue, revision: int | None) -> bool:
        key = queue_key(session_key)
        data = codec.dumps(queue.model_dump(by_alias=True, mode="json"))
        try:
            if revision is None:
                await self.kv.create(key, data)
            elif queue.events:
                await self.kv.update(key, data, last=revision)
            else:
                await self.kv.delete(key, last=revision)
        except KeyWrongLastSequenceError:
            return False
        except BadRequestError as exc:  # a delete on a stale revision is not translated
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        return True

    async def push(self, session_key: str, text: str, source: str, now_ms: int) -> int:
        """Queue one event; how many now wait for the session's next turn."""
        event = QueuedEvent(id=uuid.uuid4().hex[:16], text=text, ts=now_ms, source=source)
        for attempt in range(CAS_ATTEMPTS):
            queue, revision = await self._read(session_key)
            size = sum(len(e.text.encode()) for e in queue.events) + len(text.encode())
            if len(queue.events) >= MAX_EVENTS or size > MAX_BYTES:
                raise Conflict(
                    f"session {session_key!r} already has {len(queue.events)} system events "
                    f"waiting ({MAX_EVENTS} events or {MAX_BYTES // 1024} KiB at most); "
                    "they are delivered with its next turn",
                    code="SYSTEM_EVENTS_FULL",
                )
            queue.events.append(event)
            if await self._write(session_key, queue, revision):
                return len(queue.events)
            # Lost the race to another writer: back off a little (jittered) and read again.
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise Conflict("the session's system events changed concurrently; retry", code="BUSY")

    async def waiting(self, session_key: str) -> int:
        queue, _ = await self._read(session_key)
        return len(queue.events)

    async def deliver(
        self,
        session_key: str,
        append: Callable[[dict[str, Any]], Awaitable[Any]],
        run_id: str,
    ) -> dict[str, Any] | None:
        """Append the queued events to the transcript as one system message (returned), then
        take them off the queue; None when nothing waits. The caller holds the lane."""
        queue, revision = await self._read(session_key)
        if not queue.events:
            return None
        message = new_message(
            "system", render(queue.events), runId=run_id, label=LABEL, injected=True
        )
        await append(message)
        taken = {e.id for e in queue.events}
        current: Queue = queue
        for _ in range(CAS_ATTEMPTS):
            if revision is None:
                return message  # removed meanwhile (a session reset): nothing left to take
            rest = [e for e in current.events if e.id not in taken]
            if await self._write(session_key, Queue(events=rest), revision):
                return message
            current, revision = await self._read(session_key)  # one was queued meanwhile
        raise Conflict("the session's system events changed concurrently", code="BUSY")
