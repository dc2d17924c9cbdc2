"""Server-side WebSocket frames as bytes (RFC 6455 §5.2). Pure.

Server frames are never masked and we negotiate no extension (per-message compression
triples memory per connection), so a frame is its header followed by the payload, the same
bytes for every client: a broadcast frame is built once and written to each socket.
"""

from __future__ import annotations

import struct

_TEXT = 0x81  # FIN + opcode 1
_CLOSE = 0x88  # FIN + opcode 8
PING = b"\x89\x00"  # FIN + opcode 9, empty payload


def header(length: int, first: int = _TEXT) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def text(payload: bytes) -> bytes:
    """One complete text frame carrying `payload` (already UTF-8 JSON)."""
    return header(len(payload)) + payload
