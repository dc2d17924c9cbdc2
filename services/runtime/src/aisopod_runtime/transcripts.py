"""Chat transcripts: append-only messages in stream `TRANSCRIPTS`, one subject per session.

A message is `{id, role, content, ts, runId?, label?, toolCalls?, toolCallId?, toolName?,
stopReason?}` with `toolCalls` = `[{id, name, args}]` on an assistant message that asked for
tools and `toolCallId`/`toolName` on the `tool` message that answers one. Reading takes the
last `limit` messages through the process's `TranscriptCache` (history.py): O(new messages)
per read once a session's tail is cached; the first read of a session in a process reads
the subject in full.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from nats.js.errors import NotFoundError

from aisopod import codec
from aisopod.bus import Bus
from aisopod.state import stream_name
from aisopod_runtime.history import TranscriptCache

HISTORY_MAX_BYTES = 512 * 1024
"""chat.history replies stay well under NATS' 1 MiB payload and the WS frame limit."""


def new_message(role: str, content: Any, **fields: Any) -> dict[str, Any]:
    message = {
        "id": uuid.uuid4().hex,
        "role": role,
        "content": content,
        "ts": int(time.time() * 1000),
    }
    message.update({k: v for k, v in fields.items() if v is not None})
    return message


class TranscriptStore:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "TRANSCRIPTS")
        self.cache = TranscriptCache(bus.js, self.stream)

    def subject(self, session_key: str) -> str:
        return self.bus.subjects.transcript(session_key)

    async def append(self, session_key: str, message: dict[str, Any]) -> int:
        """Persist one message; returns its stream sequence."""
        ack = await self.bus.js.publish(
            self.subject(session_key), codec.dumps(message), stream=self.stream
        )
        return ack.seq

    async def read(self, session_key: str, limit: int) -> list[dict[str, Any]]:
        """The last `limit` messages of the session, oldest first."""
        return await self.cache.read(self.subject(session_key), limit)

    async def purge(self, session_key: str) -> None:
        subject = self.subject(session_key)
        with contextlib.suppress(NotFoundError):
            await self.bus.js.purge_stream(self.stream, subject=subject)
        # Frees the memory now; a cached tail could not be served anyway (history.py).
        self.cache.forget(subject)


def cap_bytes(
    messages: list[dict[str, Any]], limit: int = HISTORY_MAX_BYTES
) -> list[dict[str, Any]]:
    """The newest messages whose JSON fits `limit` bytes; one oversized message is cut."""
    out: list[dict[str, Any]] = []
    used = 0
    for message in reversed(messages):
        size = len(codec.dumps(message))
        if used + size > limit:
            if not out:  # never return nothing because the last message is huge
                out.append(_truncated(message, limit))
            break
        out.append(message)
        used += size
    out.reverse()
    return out


def _truncated(message: dict[str, Any], limit: int) -> dict[str, Any]:
    content = message.get("content")
    text = content if isinstance(content, str) else codec.dumps(content).decode()
    return {**message, "content": text[: limit // 2], "truncated": True}
