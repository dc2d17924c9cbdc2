"""Client frames read without websockets' parser (wsframes.client_messages), and the
transport handing everything else to websockets, over a real connection."""

from __future__ import annotations

import os
import struct

import orjson
from prometheus_client import generate_latest
from websockets.speedups import apply_mask

from aisopod_ws_gateway import metrics, wsframes
from aisopod_ws_gateway.transport import WsTransport
from tests.support.ws_client import WsClient


def masked(payload: bytes, first: int = 0x81) -> bytes:
    """A client frame (always masked, RFC 6455 §5.3)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + key + apply_mask(payload, key)


def test_complete_frames_are_read_and_partial_ones_wait() -> None:
    small, medium, large = b"a" * 5, b"b" * 300, b"c" * 70_000
    buf = masked(small) + masked(medium, 0x82) + masked(large)
    assert wsframes.client_messages(buf, None) == ([small, medium, large], len(buf), False)
    for cut in (1, 2, 3, 5, 9, len(buf) - 1):
        messages, used, more = wsframes.client_messages(buf[:cut], None)
        assert more and used <= cut
        assert messages == [small, medium, large][: len(messages)]


def test_other_frames_are_left_to_websockets() -> None:
    ping = masked(b"p", 0x89)
    fragment = masked(b"part", 0x01)  # text without FIN
    rsv = masked(b"x", 0xC1)  # RSV1: an extension we did not negotiate
    unmasked = bytes((0x81, 1)) + b"x"
    for other in (ping, fragment, rsv, unmasked):
        assert wsframes.client_messages(masked(b"ok") + other, None)[1:] == (
            len(masked(b"ok")),
            False,
        )
    too_big = masked(b"z" * 200)
    assert wsframes.client_messages(too_big, 199) == ([], 0, False)
    assert wsframes.client_messages(too_big, 200)[0] == [b"z" * 200]


def _server_side(gw, conn_id: str) -> WsTransport:
    for sock in gw.gateway.sockets:
        if sock.conn is not None and sock.conn.conn_id == conn_id:
            return sock
    raise AssertionError("no such connection")


def _health(n: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "health"})


async def test_any_split_of_frames_is_answered_in_order(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        server = _server_side(gw, ws.hello["server"]["connId"])
        assert server._rx == b""  # reading simple frames itself after the handshake
        stream = b"".join(masked(_health(n)) for n in range(1, 4))
        stream += masked(b"ping!", 0x89)  # websockets answers it, then hands back
        stream += masked(_health(4)[:10], 0x01) + masked(_health(4)[10:], 0x80)  # fragmented
        stream += masked(_health(5))
        for start in range(0, len(stream), 7):  # chunks cutting headers, keys and payloads
            server.data_received(stream[start : start + 7])
        ids = [(await ws.recv_raw())["id"] for _ in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        assert server._rx == b""
        assert "result" in await ws.request("health")  # the real socket still in step


async def test_too_big_frame_still_closes_1009(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        server = _server_side(gw, ws.hello["server"]["connId"])
        big = masked(b"x" * (server.ws.max_message_size + 1))
        server.data_received(big[:100])
        code, _ = await ws.wait_closed()
        assert code == 1009
        assert server._rx is None


async def test_loop_counters_are_exposed(gw) -> None:
    before = metrics.REQUESTS.value
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        await ws.request("health")
    assert metrics.REQUESTS.value == before + 1
    text = generate_latest().decode()
    assert f"aisopod_ws_requests_total {float(metrics.REQUESTS.value)}" in text
    assert "# TYPE aisopod_ws_frames_in_total counter" in text
