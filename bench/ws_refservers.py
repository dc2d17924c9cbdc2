"""Bare reference servers of the ws benchmarks, each run as its own process:

python bench/ws_refservers.py echo PORT            websockets server, echo (P1 floor)
python bench/ws_refservers.py idle-websockets PORT websockets server holding sockets (P5)
python bench/ws_refservers.py idle-uvicorn PORT    uvicorn ws=websockets-sansio (P5)
python bench/ws_refservers.py worker NATS_URL USER PASSWORD METHOD
    a NATS worker answering `aisopod.rpc.METHOD` (P2 reference: raw request/reply;
    also serves the method for the gateway when no runtime does yet)
python bench/ws_refservers.py auth NATS_URL USER PASSWORD TOKEN
    answers `aisopod.auth.verify` for TOKEN, only when no auth service does yet
"""

from __future__ import annotations

import asyncio
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
        "worker": lambda: worker(*args),
        "auth": lambda: auth(*args),
    }
    uvloop.run(runners[kind]())


if __name__ == "__main__":
    main()
