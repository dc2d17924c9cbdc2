"""Writing responses straight to ASGI `send`: the fast path's and the edge's only I/O.

No Response objects, no header dict, no re-encoding: a JSON body is written with its
length, an error in the documented shape (errors.render), a stream as it comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from aisopod.errors import AisopodError
from aisopod_http_api.errors import render

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
SSE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", SSE),
    (b"cache-control", b"no-cache"),
)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, path: str, exc: AisopodError) -> None:
    status, body, headers = render(path, exc)
    if status == 413:
        headers.append((b"connection", b"close"))  # the rest of the body was not read
    await send_bytes(send, status, body, JSON, headers)


async def start_stream(
    send: Send, status: int = 200, headers: Sequence[tuple[bytes, bytes]] = SSE_HEADERS
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def stream_chunk(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client is gone (or the response is complete, for uvicorn)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def unless_gone(receive: Receive, work: Awaitable[None]) -> bool:
    """Run `work` unless the client disconnects first (then `work` is cancelled).

    True when `work` finished. Its exceptions propagate. Used where the waiting is long
    and there is no upstream connection to close (agent turns).

    `work` runs in the caller's own task; one watcher task waits for the disconnect and
    cancels the caller's task when it comes. (A task for `work` beside the watcher, and
    `asyncio.wait` on both, cost a task and a wait per request on the agent path.)
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await wait_disconnect(receive)
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except (asyncio.CancelledError, Exception):
        if not gone:
            raise  # not ours (the server stopping, say), or `work`'s own error
        # Gone: whatever `work` made of our cancellation ends here.
    finally:
        watcher.cancel()
    if gone:
        current.uncancel()  # the cancellation we asked for is spent
        return False
    return True


class AsgiResponse(Response):
    """A FastAPI route's way to hand the exchange to raw ASGI code (streams, disconnects)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
