"""The HTTP face of a service whose clients reach it over NATS only (auth, ratelimit,
runtime): /health, /ready (and their /healthz, /readyz aliases) and /metrics, answered by
a small asyncio HTTP/1.1 responder instead of uvicorn and Starlette.

Those three services serve nothing else over HTTP, and uvicorn, Starlette, anyio and
click cost each of them ~4 MiB of RSS that a Python process never gives back
(docs/deployment.md, "Python services' memory"). The answers are the ones `app.py`'s
routes give: the same bodies, status codes, `Cache-Control: no-store`, the security
headers of `securityheaders.py`, `Date`, no `Server`; GET and HEAD only (405 with `Allow`
otherwise), 404 for any other path. What it does not do: request bodies other than a
`Content-Length` one (read and dropped; `Transfer-Encoding` gets 501), HTTP/2, TLS (the
services listen on a private address; Traefik never routes to these three).

The lifecycle is uvicorn's with `lifespan="on"`: the host starts, then the service's
`setup`, then the port opens; on stop the port closes, open connections end once their
current answer is written (at most the drain timeout), then `setup` and the host stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from email.utils import formatdate
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aisopod.host import ServiceHost, run_server
from aisopod.memory import settle_after_start
from aisopod.probes import LIVENESS_PATHS, READINESS_PATHS
from aisopod.securityheaders import SECURITY_HEADERS

log = logging.getLogger("aisopod.probes")

Setup = Callable[[ServiceHost], AbstractAsyncContextManager[None]]

MAX_HEAD = 16 * 1024  # request line and headers; larger gets 431
MAX_BODY = 64 * 1024  # a probe has no body; a larger one is refused (413)
KEEP_ALIVE_S = 5.0  # uvicorn's default idle keep-alive
_ALLOW = "GET, HEAD"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_NO_STORE = (("Cache-Control", "no-store"),)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class ProbeApp:
    """What `build()` of such a service returns in place of an ASGI app: the host and the
    service's setup, run by `ProbeServer`."""

    def __init__(self, host: ServiceHost, setup: Setup | None = None) -> None:
        self.host = host
        self.setup = setup

    def answer(self, method: str, target: str) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Status, body and headers for one request (the body also for HEAD: its length
        goes into Content-Length)."""
        path = target.split("?", 1)[0]
        known = path in LIVENESS_PATHS or path in READINESS_PATHS or path == "/metrics"
        if not known:
            return 404, b"Not Found", [("Content-Type", _TEXT)]
        if method not in ("GET", "HEAD"):
            return 405, b"Method Not Allowed", [("Content-Type", _TEXT), ("Allow", _ALLOW)]
        host = self.host
        if path in LIVENESS_PATHS:
            body = {
                "ok": True,
                "service": host.name,
                "version": host.version,
                "instance": host.instance,
            }
            return 200, orjson.dumps(body), [("Content-Type", _JSON), *_NO_STORE]
        if path in READINESS_PATHS:
            reasons = host.not_ready_reasons()
            status = 503 if reasons else 200
            document = orjson.dumps({"ready": not reasons, "reasons": reasons})
            return status, document, [("Content-Type", _JSON), *_NO_STORE]
        return 200, generate_latest(), [("Content-Type", CONTENT_TYPE_LATEST)]


def _response(
    status: int, body: bytes, headers: list[tuple[str, str]], *, head: bool, close: bool
) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [f"{name}: {value}" for name, value in SECURITY_HEADERS]
    lines.append(f"Content-Length: {len(body)}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    if close:
        lines.append("Connection: close")
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head_bytes if head else head_bytes + body


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parse_head(raw: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and headers (lower-case names) of one request head."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes any byte
        raise _BadRequest(400, "undecodable request") from exc
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[1].startswith("/") or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "Bad Request")
    headers: dict[str, str] = {}
    for line in header_lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, "Bad Request")
        headers[name.lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


class ProbeServer:
    """Serves a `ProbeApp` on the host's address. `should_exit` and `force_exit` are
    uvicorn.Server's switches, so the runners treat both kinds of server alike."""

    def __init__(self, app: ProbeApp) -> None:
        self.app = app
        self.host = app.host
        self.started = False
        self._stop = asyncio.Event()
        self._now = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()
        # Connections waiting for their next request: nothing to finish, closed at stop.
        self._idle: set[asyncio.Task[None]] = set()

    @property
    def should_exit(self) -> bool:
        return self._stop.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._stop.set()

    @property
    def force_exit(self) -> bool:
        return self._now.is_set()

    @force_exit.setter
    def force_exit(self, value: bool) -> None:
        if value:
            self._stop.set()
            self._now.set()

    async def serve(self) -> None:
        """Start the host and the setup, serve until told to stop, then stop both. A
        failed start is logged and ends `serve` with `started` False (as uvicorn's lifespan
        does); `run_server` then exits with STARTUP_FAILED_EXIT_CODE."""
        async with contextlib.AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.host)
                if self.app.setup is not None:
                    await stack.enter_async_context(self.app.setup(self.host))
            except Exception:
                log.exception("startup failed")
                return
            settle_after_start()  # start-up's garbage back to the kernel (memory.py)
            settings = self.host.settings
            server = await asyncio.start_server(
                self._connection, settings.host, settings.port, limit=MAX_HEAD
            )
            self.started = True
            try:
                await self._stop.wait()
            finally:
                server.close()
                await self._finish(settings.drain_timeout_s)

    async def _finish(self, timeout: float) -> None:
        """Connections end after their current answer; past `timeout` or on force_exit,
        at once."""
        for task in self._idle:
            task.cancel()
        pending = set(self._connections)
        if not pending:
            return
        finished: asyncio.Future[Any] = asyncio.gather(*pending, return_exceptions=True)
        forced: asyncio.Future[Any] = asyncio.ensure_future(self._now.wait())
        try:
            await asyncio.wait(
                {finished, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            forced.cancel()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the peer went away or idled past the keep-alive
        except asyncio.CancelledError:
            # Closed by the stop (`_finish`). Ending normally: asyncio's stream server
            # logs a connection task that ends cancelled as an error.
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until it closes, idles past the keep-alive,
        asks to close, or the server stops."""
        task = asyncio.current_task()
        assert task is not None
        while not self._stop.is_set():
            self._idle.add(task)
            try:
                async with asyncio.timeout(KEEP_ALIVE_S):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                writer.write(_refusal(431, "Request Header Fields Too Large"))
                return
            finally:
                self._idle.discard(task)
            try:
                method, target, version, headers = _parse_head(raw[:-4])
                await self._skip_body(reader, headers)
            except _BadRequest as exc:
                writer.write(_refusal(exc.status, str(exc)))
                return
            connection = headers.get("connection", "").lower()
            close = (
                "close" in connection
                or (version == "HTTP/1.0" and "keep-alive" not in connection)
                or self._stop.is_set()
            )
            status, body, extra = self.app.answer(method, target)
            writer.write(_response(status, body, extra, head=method == "HEAD", close=close))
            await writer.drain()
            if close:
                return

    @staticmethod
    async def _skip_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "Transfer-Encoding is not supported here")
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise _BadRequest(400, "Bad Request")
        if int(length) > MAX_BODY:
            raise _BadRequest(413, "Content Too Large")
        if int(length):
            await reader.readexactly(int(length))


def _refusal(status: int, message: str) -> bytes:
    return _response(status, message.encode(), [("Content-Type", _TEXT)], head=False, close=True)


def serve(host: ServiceHost, app: ProbeApp) -> None:
    """Run until SIGTERM/SIGINT, then drain and stop (as `aisopod.app.serve` does for
    an ASGI service)."""
    run_server(host, ProbeServer(app))
