"""Bare reference servers of the ws benchmarks, each run as its own process:

python bench/ws_refservers.py echo PORT            websockets server, echo (P1 floor)
python bench/ws_refservers.py idle-websockets PORT websockets server holding sockets (P5)
python bench/ws_refservers.py idle-uvicorn PORT    uvicorn ws=websockets-sansio (P5)
python bench/ws_refservers.py handshake PORT CHALLENGE HELLO
    websockets server speaking a handshake's shape: a CHALLENGE-byte text frame after the
    101, then a HELLO-byte frame answering the first frame (P3 floor, bench/handshake_floor.py)
python bench/ws_refservers.py handshake-raw PORT CHALLENGE HELLO
    the same by hand on an asyncio.Protocol: the 101 and the challenge in one write, no
    library (the floor of Python, Traefik and the kernel)
python bench/ws_refservers.py worker NATS_URL USER PASSWORD METHOD
    a NATS worker answering `aisopod.rpc.METHOD` (P2 reference: raw request/reply;
    also serves the method for the gateway when no runtime does yet)
python bench/ws_refservers.py auth NATS_URL USER PASSWORD TOKEN
    answers `aisopod.auth.verify` for TOKEN, only when no auth service does yet
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sys

import orjson
import uvloop


async def echo(port: int) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        async for message in ws:
            await ws.send(message)

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        await asyncio.Future()


async def idle_websockets(port: int) -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.send("hi")
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", port, compression=None):
        await asyncio.Future()


def padded(size: int) -> bytes:
    """A JSON text of exactly `size` bytes (the size of the gateway's own frame)."""
    return b'{"pad":"' + b"x" * max(0, size - 10) + b'"}'


async def handshake(port: int, challenge_size: int, hello_size: int) -> None:
    from websockets.asyncio.server import serve

    challenge, hello = padded(challenge_size).decode(), padded(hello_size).decode()

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.send(challenge)
        await ws.recv()
        await ws.send(hello)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        await asyncio.Future()


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def server_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + n.to_bytes(8, "big") + payload


class RawHandshake(asyncio.Protocol):
    """Only what a handshake's bytes need: find the key, answer 101 and the challenge in
    one write, answer the first complete client frame with the hello. No validation."""

    def __init__(self, challenge: bytes, hello: bytes) -> None:
        self.challenge, self.hello = challenge, hello
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            key = b""
            for line in self.buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
            self.buf = self.buf[end + 4 :]
            self.upgraded = True
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept
                + b"\r\n\r\n"
                + self.challenge
            )
        if len(self.buf) >= 2 and self.hello:
            length, head = self.buf[1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(self.buf[2:4], "big"), 4
            if len(self.buf) >= head + 4 + length:
                self.buf = b""
                self.transport.write(self.hello)
                self.hello = b""  # once; the client closes next


async def handshake_raw(port: int, challenge_size: int, hello_size: int) -> None:
    challenge, hello = server_frame(padded(challenge_size)), server_frame(padded(hello_size))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RawHandshake(challenge, hello), "127.0.0.1", port)
    async with server:
        await asyncio.Future()


def idle_uvicorn(port: int) -> None:
    import uvicorn

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        ws="websockets-sansio",
        loop="uvloop",
        http="httptools",
        log_level="warning",
        ws_per_message_deflate=False,
    )


async def worker(url: str, user: str, password: str, method: str) -> None:
    import nats

    from aisopod.bus import encode_reply

    nc = await nats.connect(url.split(","), user=user, password=password)
    body = encode_reply(
        {"config": {"gateway": {"maxPayload": 1048576}}, "hash": "h", "revision": 1}
    )

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        await msg.respond(body)

    await nc.subscribe(f"aisopod.rpc.{method}", cb=handler, queue="runtime")
    await asyncio.Future()


async def auth(url: str, user: str, password: str, token: str) -> None:
    import nats

    from aisopod.bus import encode_reply
    from aisopod.contracts.auth import VerifyRequest
    from aisopod.errors import Unauthenticated

    nc = await nats.connect(url.split(","), user=user, password=password)

    async def handler(msg) -> None:  # type: ignore[no-untyped-def]
        request = VerifyRequest.model_validate(orjson.loads(msg.data))
        if (request.auth.token or request.bearer) != token:
            await msg.respond(encode_reply(error=Unauthenticated(code="AUTH_TOKEN_MISMATCH")))
            return
        principal = {
            "id": "admin",
            "role": request.role,
            "scopes": request.scopes,
            "authMethod": "token",
        }
        await msg.respond(encode_reply({"principal": principal}))

    await nc.subscribe("aisopod.auth.verify", cb=handler, queue="auth")
    await asyncio.Future()


def main() -> None:
    kind, *args = sys.argv[1:]
    if kind == "idle-uvicorn":
        idle_uvicorn(int(args[0]))
        return
    runners = {
        "echo": lambda: echo(int(args[0])),
        "idle-websockets": lambda: idle_websockets(int(args[0])),
        "handshake": lambda: handshake(*map(int, args)),
        "handshake-raw": lambda: handshake_raw(*map(int, args)),
        "worker": lambda: worker(*args),
        "auth": lambda: auth(*args),
    }
    uvloop.run(runners[kind]())


if __name__ == "__main__":
    main()
