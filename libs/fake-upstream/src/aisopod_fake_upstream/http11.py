"""A small HTTP/1.1 server: asyncio protocol + httptools parser, keep-alive and pipelining.

Why hand-rolled rather than an ASGI app on uvicorn: a complete response is written straight
from `data_received` with no task, no ASGI message dicts and no per-request coroutine, which
is several times faster (numbers in the README); and a broken stream is a plain
`transport.close()` in the middle of a body instead of an exception logged by the server.

A handler returns either a complete `Response`, written at once, or a `Streamer`: a
coroutine function that gets a `ResponseWriter` and may sleep, stream and cut the
connection. Requests pipelined behind a streamer wait their turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

import httptools

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024
_MAX_PIPELINED = 32
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Header names lower-case; a repeated header keeps its last value."""
    body: bytes


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    events: list[bytes] | None = None
    """When set, the body is sent chunked, one chunk per item (SSE events)."""


def head_bytes(
    status: int,
    content_type: str,
    headers: tuple[tuple[str, str], ...],
    *,
    length: int | None,
    keep_alive: bool,
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}",
        f"content-type: {content_type}",
    ]
    lines.append("transfer-encoding: chunked" if length is None else f"content-length: {length}")
    if not keep_alive:
        lines.append("connection: close")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk_bytes(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def encode_response(response: Response, keep_alive: bool) -> bytes:
    if response.events is None:
        head = head_bytes(
            response.status,
            response.content_type,
            response.headers,
            length=len(response.body),
            keep_alive=keep_alive,
        )
        return head + response.body
    head = head_bytes(
        response.status, response.content_type, response.headers, length=None, keep_alive=keep_alive
    )
    return head + b"".join(map(chunk_bytes, response.events)) + b"0\r\n\r\n"


class ResponseWriter:
    """Writes one response for a `Streamer`, honouring the transport's flow control."""

    def __init__(self, connection: HttpConnection, keep_alive: bool) -> None:
        self._connection = connection
        self.keep_alive = keep_alive
        self.started = False
        self.finished = False
        self._chunked = False

    async def respond(self, response: Response) -> None:
        """Send a whole response."""
        self.started = self.finished = True
        await self._connection.write(encode_response(response, self.keep_alive))

    async def send_head(
        self,
        status: int,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
        *,
        length: int | None = None,
    ) -> None:
        """Send the status line and headers; without a length the body is chunked."""
        self.started = True
        self._chunked = length is None
        await self._connection.write(
            head_bytes(status, content_type, headers, length=length, keep_alive=self.keep_alive)
        )

    async def send(self, data: bytes) -> None:
        await self._connection.write(chunk_bytes(data) if self._chunked else data)

    async def finish(self) -> None:
        self.finished = True
        if self._chunked:
            await self._connection.write(b"0\r\n\r\n")

    def cut(self) -> None:
        """Close the connection now, leaving the response unfinished (bytes sent so far flush)."""
        self._connection.close()


Streamer = Callable[[ResponseWriter], Awaitable[None]]
Handler = Callable[[Request], "Response | Streamer"]


class HttpConnection(asyncio.Protocol):
    def __init__(self, handler: Handler, live: set[HttpConnection]) -> None:
        self._handler = handler
        self._live = live
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._pending: deque[tuple[Request, bool]] = deque()
        self._drain: asyncio.Future[None] | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(400, b"upgrades are not supported")
        except httptools.HttpParserError:
            self._reject(400, b"malformed HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._live.discard(self)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
        # Cancelled rather than failed: nobody may be waiting, and a cancelled future is not
        # reported as an unretrieved exception. A waiting writer's task is cancelled anyway.
        if self._drain is not None:
            self._drain.cancel()

    def pause_writing(self) -> None:
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size <= MAX_BODY:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._closed:
            return
        if self._body_size > MAX_BODY:
            self._reject(413, b"request body too large")
            return
        keep_alive = self._parser.should_keep_alive() and self._parser.get_http_version() == "1.1"
        path, _, query = self._url.decode("latin-1").partition("?")
        request = Request(
            method=self._parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=self._headers,
            body=b"".join(self._body),
        )
        if self._task is not None or self._pending:
            self._pending.append((request, keep_alive))
            if len(self._pending) >= _MAX_PIPELINED and self._transport is not None:
                self._transport.pause_reading()
            return
        self._dispatch(request, keep_alive)

    # plumbing

    def write_now(self, data: bytes) -> None:
        if not self._closed and self._transport is not None:
            self._transport.write(data)

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("client went away")
        self.write_now(data)
        if self._drain is not None and not self._drain.done():
            await self._drain

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._closed = True
            self._transport.close()

    def abort(self) -> asyncio.Task[None] | None:
        """Drop the connection and cancel its handler (server shutdown); return that task."""
        task = self._task
        if self._transport is not None:
            self._transport.abort()
        if task is not None:
            task.cancel()
        return task

    def _reject(self, status: int, message: bytes) -> None:
        self.write_now(encode_response(Response(status, message, "text/plain"), keep_alive=False))
        self.close()

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        try:
            result = self._handler(request)
        except Exception:
            log.exception("handler failed for %s %s", request.method, request.path)
            result = Response(500, b'{"error":{"message":"internal error","type":"server_error"}}')
        if isinstance(result, Response):
            self.write_now(encode_response(result, keep_alive))
            if not keep_alive:
                self.close()
            return
        self._task = asyncio.get_running_loop().create_task(self._stream(result, keep_alive))

    async def _stream(self, streamer: Streamer, keep_alive: bool) -> None:
        writer = ResponseWriter(self, keep_alive)
        try:
            await streamer(writer)
        except ConnectionResetError:
            self.close()
        except Exception:
            log.exception("streaming handler failed")
            self.close()
        finally:
            self._task = None
        if self._closed:
            return
        if not writer.finished or not keep_alive:
            self.close()
            return
        self._next()

    def _next(self) -> None:
        while self._pending and self._task is None and not self._closed:
            request, keep_alive = self._pending.popleft()
            self._dispatch(request, keep_alive)
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()


class HttpServer:
    """A listening socket plus the connections it accepted, so shutdown can end them all."""

    def __init__(self, server: asyncio.Server, live: set[HttpConnection]) -> None:
        self._server = server
        self._live = live

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._server.close()
        tasks = [task for conn in list(self._live) if (task := conn.abort()) is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()


async def start_server(handler: Handler, host: str, port: int) -> HttpServer:
    loop = asyncio.get_running_loop()
    live: set[HttpConnection] = set()
    server = await loop.create_server(
        lambda: HttpConnection(handler, live), host, port, backlog=2048, reuse_address=True
    )
    return HttpServer(server, live)
