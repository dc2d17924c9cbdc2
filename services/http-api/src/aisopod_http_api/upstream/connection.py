"""One keep-alive HTTP/1.1 connection to a model provider, and one exchange on it.

The proxy fast path needs a client that costs tens of microseconds per request: httpx
measured ~1.1 ms of CPU per request here and collapses under 64 concurrent requests on one
pool (docs/http-api.md). So this is an asyncio `Protocol` with the httptools response parser:
the request goes out in one write, body bytes arrive through `on_body` and are handed to the
consumer as they are, never re-encoded. Flow control: reading pauses while the consumer has
more than `HIGH_WATER` bytes unread (a slow client slows its upstream, not our memory).
Deadlines are one timer handle per exchange (`expire_in`), not an `asyncio.timeout` per
await: an expired exchange fails with `UpstreamTimeout` and its connection is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httptools

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


class UpstreamClosed(ConnectionError):
    """The connection ended before the response did."""


class UpstreamTimeout(TimeoutError):
    """The provider did not answer (or went silent) within the exchange's deadline."""


class Exchange:
    """The consumer's side of one request/response: the head, then body chunks."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_timer",
        "_waiter",
        "aborted",
        "head",
        "headers",
        "received_any",
        "status",
    )

    def __init__(self, conn: UpstreamConnection, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self.head: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.received_any = False
        self.aborted = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- deadline ---------------------------------------------------------------------
    def expire_in(self, seconds: float | None) -> None:
        """(Re)arm the deadline: past it, the exchange fails and its connection closes.
        None disarms it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None and not self._done:
            self._timer = self._conn.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._conn.exchange is self:
            self._conn.exchange = None
            self._on_error(UpstreamTimeout("the provider did not answer in time"))
            self._conn.close()

    # -- producer side (the protocol) -------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        if not self.head.done():
            self.head.set_result(None)

    def _on_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _on_complete(self) -> None:
        self._done = True
        self.expire_in(None)
        self._wake()

    def _on_error(self, exc: BaseException) -> None:
        if self._done:
            return
        self.expire_in(None)
        self._error = exc
        self._done = True
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: the consumer may be gone already
        self._wake()

    # -- consumer side ----------------------------------------------------------------
    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        """The next body chunk as received; b"" at the end. Raises if the stream broke."""
        while not self._chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                return b""
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._buffered < LOW_WATER:
            self._conn.resume()
        return chunk

    async def read_some(self) -> bytes:
        """Every body byte received so far (at least one chunk; b"" at the end), joined:
        a burst of upstream chunks leaves in one write instead of one write each."""
        chunk = await self.read()
        if not chunk or not self._chunks:
            return chunk
        parts = [chunk]
        while self._chunks:
            more = self._chunks.popleft()
            self._buffered -= len(more)
            parts.append(more)
        if self._buffered < LOW_WATER:
            self._conn.resume()
        return b"".join(parts)

    async def read_all(self, limit: int) -> bytes:
        """The whole body (up to `limit` bytes; more is an error)."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read():
            size += len(chunk)
            if size > limit:
                self.abort()
                raise UpstreamClosed(f"response body over {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    @property
    def complete(self) -> bool:
        return self._done and self._error is None and not self._chunks

    def abort(self) -> None:
        """Give up on this response: the connection is closed, never reused."""
        self.aborted = True
        if self._conn.exchange is self:  # else it ended: the connection is someone else's
            self._conn.exchange = None
            self._on_error(UpstreamClosed("aborted"))
            self._conn.close()


class UpstreamConnection(asyncio.Protocol):
    """A pooled connection. `on_idle(conn)` is called when a response ended cleanly and the
    connection may carry another; `on_closed(conn)` when it is gone."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_idle: Callable[[UpstreamConnection], None],
        on_closed: Callable[[UpstreamConnection], None],
    ) -> None:
        self.loop = loop
        self._on_idle = on_idle
        self._on_closed = on_closed
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchange: Exchange | None = None
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._until_close = False
        self._paused = False

    # -- asyncio.Protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None or self._parser is None:
            self.close()  # bytes nobody asked for: the connection is not trustworthy
            return
        exchange.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            exchange._on_error(UpstreamClosed(f"malformed response from upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            if self._until_close and exchange.head.done():
                exchange._on_complete()  # a body framed by the connection's end
            else:
                exchange._on_error(UpstreamClosed("upstream closed the connection"))
        self._on_closed(self)

    # -- httptools callbacks ----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self._parser is not None and self.exchange is not None
        status = self._parser.get_status_code()
        headers = self._headers
        self._until_close = not any(
            n in (b"content-length", b"transfer-encoding") for n, _ in headers
        )
        self.exchange._on_head(status, headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange._on_body(body)

    def on_message_complete(self) -> None:
        exchange = self.exchange
        keep_alive = self._parser is not None and self._parser.should_keep_alive()
        self.exchange = None
        self._parser = None
        if exchange is not None:
            exchange._on_complete()
        if keep_alive and not self.closed:
            self.resume()
            self._on_idle(self)
        else:
            self.close()

    # -- the pool's side --------------------------------------------------------------
    def start(self, request: bytes) -> Exchange:
        """Write one request; the returned exchange receives the response."""
        assert self.transport is not None and self.exchange is None
        exchange = Exchange(self, self.loop)
        self.exchange = exchange
        self._headers = []
        self._until_close = False
        self._parser = httptools.HttpResponseParser(self)
        self.transport.write(request)
        return exchange

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
