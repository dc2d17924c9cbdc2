"""One TCP connection: HTTP/1.1 (upgrade, /health, /ready, /metrics) and WebSocket frames.

An `asyncio.Protocol` around websockets' sans-I/O `ServerProtocol`: bytes in, events out,
bytes written straight to the transport. No task exists for an idle connection (a task per
socket is ~2 KiB, two with keepalive); heartbeats are driven by one timer for all sockets
(`Gateway`). The send buffer is the transport's own write buffer: its size is the
backpressure signal (`buffered`), so fan-out never awaits a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from aisopod.securityheaders import SECURITY_HEADERS
from aisopod_ws_gateway import admission, wsframes
from aisopod_ws_gateway.codec import JSONRPC, Codec
from aisopod_ws_gateway.compat_websockets import (
    max_message_size,
    parser_between_frames,
    restart_idle_parser,
)
from aisopod_ws_gateway.openclaw.frames import OPENCLAW

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws")
_WS_LOG = logging.getLogger("aisopod.ws.protocol")
_WS_LOG.setLevel(logging.WARNING)  # websockets logs every open/close at INFO

# The upgrade path chooses the wire format: the server speaks first, nothing to sniff.
CODECS: dict[str, Codec] = {"/ws": JSONRPC, "/": JSONRPC, "/openclaw": OPENCLAW}
CLOSE_GRACE_S = 5.0
# A client closed with data still queued (a slow consumer) gets longer to read up to the
# close frame, so it learns why; its buffer is bounded by maxBufferedBytes meanwhile.
CLOSE_GRACE_BUFFERED_S = 30.0

HttpHandler = Callable[[Request], Response]


class WsTransport(asyncio.Protocol):
    __slots__ = (
        "_cork",
        "_fragments",
        "_rx",
        "_timer",
        "conn",
        "gateway",
        "last_rx",
        "transport",
        "ws",
    )

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.ws = ServerProtocol(max_size=gateway.pre_hello_max_size(), logger=_WS_LOG)
        self.conn: Connection | None = None
        self.last_rx = 0.0
        self._fragments: list[bytes] | None = None
        # Not None: websockets' parser waits at a frame boundary of an open connection, and
        # simple frames are read here (`wsframes.client_messages`); holds a partial frame.
        self._rx: bytes | None = None
        self._timer: asyncio.TimerHandle | None = None
        # Not None while an upgrade is answered: the 101 and the challenge collect here and
        # leave in one write (one send here, one read for Traefik, instead of two each).
        self._cork: list[bytes] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.last_rx = self.gateway.loop.time()
        self.gateway.sockets.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.gateway.loop.time()
        ws = self.ws
        rx = self._rx
        if rx is not None:
            buf = rx + data if rx else data
            messages, used, more = wsframes.client_messages(buf, max_message_size(ws))
            for message in messages:
                self._on_message(message)
            rest = buf[used:] if used else buf
            if ws.state is OPEN and (more or not rest):
                self._rx = rest  # websockets' parser is still between frames
                return
            self._rx = None
            if not rest:
                return
            data = rest
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Request):
                self._on_http(event)
                continue
            if not isinstance(event, Frame):  # a server never receives a Response
                continue
            opcode = event.opcode
            data = bytes(event.data)  # websockets' parser produces bytes: no copy
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self._on_message(data)
                else:
                    self._fragments = [data]
            elif opcode is Opcode.CONT and self._fragments is not None:
                self._fragments.append(data)
                if event.fin:
                    message, self._fragments = b"".join(self._fragments), None
                    self._on_message(message)
        self._resync()

    def _resync(self) -> None:
        """Read simple frames here again once websockets' parser waits between frames."""
        ws = self.ws
        if ws.state is OPEN and self._fragments is None and parser_between_frames(ws):
            self._rx = b""
            restart_idle_parser(ws)  # it would keep the last frame it parsed

    def eof_received(self) -> bool | None:
        if self._rx:  # a partial frame: websockets reports the unexpected end
            self.ws.receive_data(self._rx)
        self._rx = None
        self.ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.gateway.sockets.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.closed(self.ws.close_rcvd.code if self.ws.close_rcvd else 1006)

    # -- sending ------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self.ws.state is OPEN and self.transport is not None

    @property
    def buffered(self) -> int:
        transport = self.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def write_frame(self, frame: bytes) -> None:
        """Write a complete, already framed WebSocket message (see `wsframes`)."""
        if self.ws.state is OPEN and self.transport is not None:
            self.transport.write(frame)

    def send_text(self, payload: bytes) -> None:
        if self.ws.state is OPEN and self.transport is not None:
            if self._cork is not None:
                self._cork.append(wsframes.text(payload))
                return
            self.transport.write(wsframes.text(payload))

    def ping(self) -> None:
        self.write_frame(wsframes.PING)

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake; the socket is dropped if the peer does not finish
        it within the grace period (or could not: a stalled slow consumer)."""
        if self.ws.state is OPEN:
            self.ws.send_close(code, reason[:120])
            self._flush()
        if self.transport is not None and self._timer is None:
            grace = CLOSE_GRACE_BUFFERED_S if self.buffered else CLOSE_GRACE_S
            self._timer = self.gateway.loop.call_later(grace, self.abort)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                if self._cork is not None:
                    self._cork.append(chunk)
                else:
                    transport.write(chunk)
            elif transport.can_write_eof():
                # End of stream. Half-close and let the peer finish: one still sending (an
                # oversized frame) would otherwise get a reset from the kernel for the unread
                # bytes and lose the close frame (1009 seen as 1006). What it still sends is
                # discarded; its FIN or the grace timer ends the socket.
                transport.write_eof()
                if self._timer is None:
                    self._timer = self.gateway.loop.call_later(CLOSE_GRACE_S, self.abort)
            else:
                transport.close()

    # -- inbound ------------------------------------------------------------------------
    def _on_message(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            try:
                conn.received(data)
            except Exception:  # a bug must not kill the loop; the socket goes, others stay
                log.exception("failed handling a frame")
                self.close(1011, "internal error")

    def _on_http(self, request: Request) -> None:
        path = request.path.split("?", 1)[0]
        headers = request.headers
        codec = CODECS.get(path)
        if codec is not None and "upgrade" in headers.get("Connection", "").lower():
            if not self.gateway.accepting:
                self._respond(plain(503, b"draining\n"), keep_alive=False)
                return
            client_ip = self.gateway.proven_client_ip(self, request)
            if client_ip is None:
                self._respond(admission.unproven())
                return
            if self.gateway.limit.exempt(path, client_ip):
                self._accept(request, client_ip, codec)  # ratelimit exempted it: no ask
                if self.conn is not None:
                    # The round trip the ask was, after the 101: it orders the revocations
                    # this client may know of before its `connect` (credentials.py).
                    self.conn.ordered = self.gateway.credentials.order()
                return
            # The connection limit is one NATS round trip: nothing more is read meanwhile
            # (a client sends no frame before the 101 anyway).
            if self.transport is not None:
                self.transport.pause_reading()
            task = self.gateway.loop.create_task(self._upgrade(request, path, client_ip, codec))
            self.gateway.track(task)
            return
        handler = self.gateway.http_routes.get(path)
        response = handler(request) if handler is not None else plain(404, b"not found\n")
        self._respond(response)

    def _respond(self, response: Response, *, keep_alive: bool = True) -> None:
        """Send one HTTP answer (an upgrade or its refusal too) with the security headers
        every answer carries (aisopod.securityheaders).

        Any answer but a 101 keeps the connection open for the next request: Traefik's
        fast proxy returns a backend connection to its pool after every non-101 answer,
        whatever `Connection: close` says, so closing it here made the next request sent on
        it a 502 (a refused upgrade in a connection flood, then a client's upgrade)."""
        for name, value in SECURITY_HEADERS:
            if name not in response.headers:
                response.headers[name] = value
        transport = self.transport
        if response.status_code == 101 or not keep_alive or transport is None:
            if not keep_alive:
                response.headers["Connection"] = "close"
            self.ws.send_response(response)
            self._flush()
            return
        transport.write(response.serialize())
        # A fresh parser for the next request on this connection.
        self.ws = ServerProtocol(max_size=self.gateway.pre_hello_max_size(), logger=_WS_LOG)
        if not transport.is_reading():
            transport.resume_reading()

    async def _upgrade(self, request: Request, path: str, client_ip: str, codec: Codec) -> None:
        try:
            refusal = await self.gateway.limit.check(path, client_ip)
        except Exception:  # a malformed reply: drop this socket, keep the others
            log.exception("connection limit check failed")
            self.abort()
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client left while we asked
        if refusal is not None:
            self._respond(refusal)
            return
        self._accept(request, client_ip, codec)
        if not transport.is_reading():
            transport.resume_reading()

    def _accept(self, request: Request, client_ip: str, codec: Codec) -> None:
        """Answer an admitted upgrade: the 101 and the challenge in one write."""
        transport = self.transport
        assert transport is not None
        response = self.ws.accept(request)
        if response.status_code != 101:
            self._respond(response)
            return
        self._cork = []
        try:
            self._respond(response)
            restart_idle_parser(self.ws)  # the request is read below, once, then let go
            self.conn = self.gateway.open_connection(self, request, client_ip, codec)
        finally:
            corked, self._cork = self._cork, None
            if corked and not transport.is_closing():
                transport.write(b"".join(corked))


def plain(status: int, body: bytes, content_type: str = "text/plain", reason: str = "") -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    return Response(status, reason or _REASONS.get(status, "OK"), headers, body)


_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
