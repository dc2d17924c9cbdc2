"""The websockets internals `compat_websockets` relies on exist and mean what it assumes.

An upgrade of websockets that changes one of them fails here, naming it.
"""

from __future__ import annotations

import os
import struct
import weakref

from websockets.http11 import Request
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from aisopod_ws_gateway.compat_websockets import (
    PROTOCOL_INTERNALS,
    max_message_size,
    parser_between_frames,
    restart_idle_parser,
    set_max_message_size,
)

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(payload: bytes, *, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A masked client frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    head = struct.pack("!BB", (0x80 if fin else 0) | opcode, 0x80 | len(payload))
    return head + mask + masked


def open_protocol() -> ServerProtocol:
    ws = ServerProtocol(max_size=1000)
    ws.receive_data(HANDSHAKE)
    ws.send_response(ws.accept(ws.events_received()[0]))
    assert ws.state is OPEN
    return ws


def test_the_protocol_attributes_exist() -> None:
    ws = open_protocol()
    for name in PROTOCOL_INTERNALS:
        assert hasattr(ws, name), f"websockets Protocol.{name} is gone"
    assert isinstance(ws.reader.buffer, bytearray | bytes)


def test_between_frames_follows_the_parser() -> None:
    ws = open_protocol()
    assert parser_between_frames(ws)

    frame = client_frame(b"hello")
    ws.receive_data(frame[:3])  # inside a frame
    assert not parser_between_frames(ws)
    ws.receive_data(frame[3:])
    assert [e.data for e in ws.events_received()] == [b"hello"]
    assert parser_between_frames(ws)

    ws.receive_data(client_frame(b"part", fin=False))  # inside a fragmented message
    ws.events_received()
    assert not parser_between_frames(ws)
    ws.receive_data(client_frame(b"end", opcode=0x0))
    ws.events_received()
    assert parser_between_frames(ws)


def test_the_message_limit_can_change_on_an_open_connection() -> None:
    ws = open_protocol()
    assert max_message_size(ws) == 1000
    set_max_message_size(ws, 10)
    ws.receive_data(client_frame(b"x" * 11))
    ws.events_received()
    assert ws.close_sent is not None and ws.close_sent.code == 1009  # message too big


def test_a_restarted_parser_lets_the_request_and_last_frame_go_and_still_parses() -> None:
    ws = open_protocol()
    frame_locals = ws.parser.gi_frame.f_locals  # ServerProtocol.parse keeps the request
    assert any(isinstance(v, Request) for v in frame_locals.values())
    held = weakref.ref(ws.parser)

    assert restart_idle_parser(ws)
    assert held() is None  # the old generator, and the request with it, is gone
    assert not any(isinstance(v, Request) for v in ws.parser.gi_frame.f_locals.values())
    assert parser_between_frames(ws)
    ws.receive_data(client_frame(b"hello"))
    assert [e.data for e in ws.events_received()] == [b"hello"]
    last_frame = ws.parser.gi_frame.f_locals["frame"]  # kept until the next frame
    assert last_frame.data == b"hello"
    assert restart_idle_parser(ws)
    assert "frame" not in ws.parser.gi_frame.f_locals
    ws.receive_data(client_frame(b"part", fin=False) + client_frame(b"end", opcode=0x0))
    assert [e.data for e in ws.events_received()] == [b"part", b"end"]
    ws.receive_data(struct.pack("!BB", 0x88, 0x80) + os.urandom(4))  # a close frame
    ws.events_received()
    assert ws.close_rcvd is not None and ws.close_rcvd.code == 1005


def test_the_upgrade_request_stays_while_a_frame_is_begun() -> None:
    ws = open_protocol()
    frame = client_frame(b"hello")
    ws.receive_data(frame[:3])
    assert not restart_idle_parser(ws)
    ws.receive_data(frame[3:])
    assert [e.data for e in ws.events_received()] == [b"hello"]
