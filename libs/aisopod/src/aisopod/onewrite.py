"""uvicorn's HTTP protocol with a response's head and body in one socket write.

uvicorn (httptools) writes a response's status line and headers when the app sends
`http.response.start`, and the body with the next `http.response.body`: two `send`
syscalls and two TCP segments for every plain JSON answer, and on a small host the first
wakes the reader (Traefik), which may run before the body follows and then wake again
for it. Here the head is held until the next write on the connection, the body's, and
both go out together. A head with nothing after it in the same pass of the event loop (a
stream whose first event comes later, a 204) is written at the end of that pass, so no
answer waits for more than the work already queued; closing writes it first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD_START = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 "


class HeadHeldTransport:
    """A transport whose response-head write is joined to the write that follows it."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
            return
        if (
            isinstance(data, bytes)
            and data.startswith(_HEAD_START)
            and data.endswith(_HEAD_END)
            and not data.startswith(_CONTINUE)  # the client waits for it to send a body
        ):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a `HeadHeldTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Only the writes go through the wrapper; flow control keeps the real transport.
        self.transport = HeadHeldTransport(transport, self.loop)  # type: ignore[assignment]
