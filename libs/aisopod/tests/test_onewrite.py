"""aisopod.onewrite: a response's head and body leave in one write, and nothing waits."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

from aisopod.onewrite import HeadHeldTransport, OneWriteHttpToolsProtocol

DEADLINE_S = 30.0
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


class Recording:
    """The transport under the wrapper: what was written, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


def _wrapped() -> tuple[HeadHeldTransport, Recording]:
    raw = Recording()
    return HeadHeldTransport(raw, asyncio.get_running_loop()), raw  # type: ignore[arg-type]


async def test_head_and_body_are_one_write() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)
    assert raw.writes == []
    transport.write(b"{}")
    assert raw.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the pass's end finds nothing held
    assert raw.writes == [HEAD + b"{}"]


async def test_a_head_alone_goes_out_at_the_end_of_the_loop_pass() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)  # a stream's head, its first event later
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]
    transport.write(b"data: 1\n\n")
    assert raw.writes == [HEAD, b"data: 1\n\n"]


async def test_continue_and_bodies_are_not_held() -> None:
    transport, raw = _wrapped()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    transport.write(b"chunk")
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"chunk"]


async def test_close_writes_a_held_head_first_and_a_closing_transport_gets_nothing() -> None:
    transport, raw = _wrapped()
    transport.write(HEAD)
    transport.close()
    assert raw.writes == [HEAD] and raw.closing
    transport, raw = _wrapped()
    transport.write(HEAD)
    raw.closing = True  # the peer went away meanwhile
    await asyncio.sleep(0)
    assert raw.writes == []
    assert transport.get_extra_info("peername") == "info:peername"  # the rest is the transport's


async def _app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(3):
            await asyncio.sleep(0.01)
            body = b"data: %d\n\n" % n
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_a_real_uvicorn_answers_whole_and_streamed_responses_on_one_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=OneWriteHttpToolsProtocol, log_config=None
    )
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for path in ("/json", "/stream", "/json"):  # keep-alive: one connection
                writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                if path == "/json":
                    assert b"content-length: 11\r\n" in head
                    assert await reader.readexactly(11) == b'{"ok":true}'
                else:
                    assert b"transfer-encoding: chunked\r\n" in head
                    stream = await reader.readuntil(b"0\r\n\r\n")
                    for n in range(3):
                        assert b"data: %d\n\n" % n in stream
            writer.close()
    finally:
        server.should_exit = True
        await serving
