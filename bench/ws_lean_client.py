"""A lean WebSocket client for load generation: an asyncio.Protocol that frames by hand.

Benchmarks need thousands of sockets and tens of thousands of requests per second from one
Python process on a 2-core machine; a full client library would measure itself. Frames
from the server are unmasked text, parsed by header only; frames we send are masked by
`websockets.frames` as RFC 6455 requires. Used identically against the gateway and against
the bare references, so comparisons are fair.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable

import orjson
from websockets.frames import Frame, Opcode

FrameHandler = Callable[["LeanClient", bytes, float], None]


class LeanClient(asyncio.Protocol):
    def __init__(self, on_frame: FrameHandler | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_frame = on_frame
        self.inbox: asyncio.Queue[bytes] | None = asyncio.Queue()
        self.frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before upgrade"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:end]).split(b"\r\n", 1)[0]
            del buf[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode()))
                return
            self.upgraded.set_result(None)
        now = time.perf_counter()
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, head = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + length:
                return
            opcode = buf[0] & 0x0F
            payload = bytes(buf[head : head + length])
            del buf[: head + length]
            if opcode == 9:  # ping: the gateway drops a client silent for two intervals
                self._pong(payload)
                continue
            if opcode != 1:
                continue
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(self, payload, now)
            elif self.inbox is not None:
                self.inbox.put_nowait(payload)

    def _pong(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(Frame(Opcode.PONG, payload).serialize(mask=True, extensions=[]))

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(Frame(Opcode.TEXT, payload).serialize(mask=True, extensions=[]))

    async def recv(self, timeout: float = 10.0) -> dict:
        assert self.inbox is not None
        return orjson.loads(await asyncio.wait_for(self.inbox.get(), timeout))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def upgrade_request(
    host: str, port: int, path: str = "/ws", headers: dict[str, str] | None = None
) -> bytes:
    """The HTTP/1.1 upgrade to a WebSocket, with a fresh key; `headers`: extra request
    headers (the edge proof, for a replica reached directly)."""
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


def connect_frame(token: str, subscribe: list[str] | None = None) -> bytes:
    """The gateway's `connect` as every bench sends it (an admin token); `subscribe` as
    given, or the gateway's default when None."""
    params: dict = {
        "client": {"id": "bench", "version": "1", "platform": "python", "mode": "bench"},
        "auth": {"token": token},
        "scopes": ["operator.admin"],
    }
    if subscribe is not None:
        params["subscribe"] = subscribe
    return orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "connect", "params": params})


async def open_socket(
    host: str, port: int, path: str = "/ws", headers: dict[str, str] | None = None
) -> LeanClient:
    """`headers`: extra request headers (the edge proof, for a replica reached directly)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(LeanClient, host, port)
    assert client.transport is not None
    client.transport.write(upgrade_request(host, port, path, headers))
    await asyncio.wait_for(client.upgraded, 10)
    return client


async def connect_gateway(
    host: str,
    port: int,
    token: str,
    *,
    subscribe: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[LeanClient, dict]:
    """Upgrade, read the challenge, send `connect`: returns the client and its hello."""
    client = await open_socket(host, port, headers=headers)
    challenge = await client.recv()
    assert challenge["method"] == "connect.challenge"
    client.send(connect_frame(token, subscribe))
    hello = await client.recv()
    if "result" not in hello:
        raise RuntimeError(f"handshake failed: {hello}")
    return client, hello["result"]


async def throughput(
    clients: list[LeanClient],
    make: Callable[[int], bytes],
    seconds: float,
    is_reply: Callable[[bytes], bool] = lambda _: True,
) -> float:
    """Requests per second with one request in flight on each socket: every frame for which
    `is_reply` holds counts and sends the next request (`make(n)`, n the count so far)."""
    done = 0
    stop_at = time.perf_counter() + seconds
    finished = asyncio.get_running_loop().create_future()
    live = len(clients)

    def on_frame(client: LeanClient, payload: bytes, now: float) -> None:
        nonlocal done, live
        if not is_reply(payload):
            return
        done += 1
        if now < stop_at:
            client.send(make(done))
        else:
            live -= 1
            if live == 0 and not finished.done():
                finished.set_result(None)

    started = time.perf_counter()
    for client in clients:
        client.on_frame = on_frame
        client.send(make(0))
    await asyncio.wait_for(finished, seconds + 30)
    elapsed = time.perf_counter() - started
    for client in clients:
        client.on_frame = None
    return round(done / elapsed)
