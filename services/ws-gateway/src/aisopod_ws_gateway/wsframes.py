"""WebSocket frames as bytes (RFC 6455 §5.2). Pure.

Server frames are never masked and we negotiate no extension (per-message compression
triples memory per connection), so a frame is its header followed by the payload, the same
bytes for every client: a broadcast frame is built once and written to each socket.

`client_messages` reads the common client frame (one masked text or binary frame, FIN, no
RSV bits, within the size limit) without websockets' generator parser; every other frame
(control, fragmented, malformed, too big) is left for websockets to handle.
"""

from __future__ import annotations

import struct

from websockets.speedups import apply_mask

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


_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_MASKED = 0x80


def client_messages(buf: bytes, max_size: int | None) -> tuple[list[bytes], int, bool]:
    """The unmasked payloads of the simple frames at the start of `buf`, the bytes they
    took, and whether what follows is the start of a simple frame still incomplete (keep
    it for more data) rather than a frame websockets must parse (or nothing)."""
    messages: list[bytes] = []
    end = len(buf)
    pos = 0
    while pos < end:
        first = buf[pos]
        if first != _FIN_TEXT and first != _FIN_BINARY:
            return messages, pos, False
        if pos + 2 > end:
            return messages, pos, True
        second = buf[pos + 1]
        if not second & _MASKED:
            return messages, pos, False
        length = second & 0x7F
        head = pos + 2
        if length == 126:
            if head + 2 > end:
                return messages, pos, True
            length = (buf[head] << 8) | buf[head + 1]
            head += 2
        elif length == 127:
            if head + 8 > end:
                return messages, pos, True
            (length,) = struct.unpack_from("!Q", buf, head)
            head += 8
        if max_size is not None and length > max_size:
            return messages, pos, False
        stop = head + 4 + length
        if stop > end:
            return messages, pos, True
        messages.append(apply_mask(buf[head + 4 : stop], buf[head : head + 4]))
        pos = stop
    return messages, pos, False
