"""Reading and writing Server-Sent Events. Pure: bytes in, events out.

The reader is incremental (chunks may split an event anywhere) and keeps only what the
OpenAI-style streams use: the `event:` name and the joined `data:` lines. The writer puts
one whole event in one bytes object, lines ending in `\\n` (each event one write:
docs/protocol/http.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None
    data: str


class SseReader:
    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    raise ValueError("an SSE event over the size limit")
                return
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            event = _parse(block)
            if event is not None:
                yield event


def _parse(block: bytes) -> SseEvent | None:
    name: str | None = None
    data: list[str] = []
    for raw in block.split(b"\n"):
        if not raw or raw.startswith(b":"):
            continue
        key, _, value = raw.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if key == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif key == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return SseEvent(name, "\n".join(data))


def encode(event: str, payload: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
