"""Readiness probes of the launcher: one plain HTTP/1.1 GET, only the status code matters;
for nats-server, one NATS connection that asks JetStream for the account's info.

The launcher polls every child several times a second until it is ready; an HTTP client
library (httpx: connection pool, anyio backend) cost the launcher ~7 MiB of RSS and most of
its start-up CPU for these few hundred one-shot requests on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

import nats
from nats.errors import Error as NatsError

from aisopod_ops.launcher.process import Probe

MAX_RESPONSE = 1 << 20  # a probe reads the whole (small) answer, never more than this


def _insecure_context() -> ssl.SSLContext:
    # The edge probe checks routing, not the certificate (it may name a public host).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _http_get(url: str, timeout: float) -> tuple[bytes, bytes]:
    """`GET url`: the status line and the body (at most MAX_RESPONSE). Raises OSError,
    ssl.SSLError, TimeoutError or EOFError when nothing answered."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=_insecure_context() if https else None
        )
        try:
            writer.write(request.encode("ascii"))
            status_line = await reader.readline()
            # Read the answer out so the server is not cut off mid-write.
            rest = b""
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                rest = await reader.read(MAX_RESPONSE)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    _, _, body = rest.partition(b"\r\n\r\n")
    return status_line, body


def _status(status_line: bytes) -> int | None:
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        return None
    return int(fields[1])


async def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of `GET url`, or None when nothing (valid) answered within `timeout`.
    https is not verified (see `_insecure_context`)."""
    try:
        status_line, _ = await _http_get(url, timeout)
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None
    return _status(status_line)


async def http_answer(url: str, timeout: float = 2.0, max_body: int = 300) -> str:
    """What `GET url` answers, in words, for a start-up failure report: the status and the
    start of the body (a service's /ready names its reasons), or why nothing answered."""
    try:
        status_line, body = await _http_get(url, timeout)
    except TimeoutError:
        return f"GET {url}: no answer within {timeout:.0f}s"
    except (OSError, ssl.SSLError, EOFError) as exc:
        return f"GET {url}: {exc.__class__.__name__}: {exc}"
    status = _status(status_line)
    if status is None:
        return f"GET {url}: not HTTP: {status_line[:80]!r}"
    text = body[:max_body].decode("utf-8", errors="replace").strip()
    return f"GET {url}: {status} {text}".rstrip()


def http_probe(url: str, ok: tuple[int, ...] = (200,)) -> Probe:
    """A probe that passes when `GET url` answers one of `ok`."""

    async def probe() -> bool:
        return await http_status(url) in ok

    return probe


def nats_probe(url: str, user: str, password: str, timeout: float = 1.0) -> Probe:
    """A probe that passes when nats-server accepts `user` and JetStream answers it: what
    the monitoring endpoint's `/healthz?js-enabled-only=true` told, without that endpoint."""

    async def quiet(_: Exception) -> None:
        return None  # not up yet: the next poll tries again, no traceback per attempt

    async def probe() -> bool:
        try:
            async with asyncio.timeout(timeout):
                client = await nats.connect(
                    url,
                    user=user,
                    password=password,
                    name="aisopod-launcher-probe",
                    allow_reconnect=False,
                    connect_timeout=timeout,
                    error_cb=quiet,
                )
                try:
                    await client.jetstream().account_info()
                finally:
                    await client.close()
        except (OSError, TimeoutError, NatsError):
            return False
        return True

    return probe
