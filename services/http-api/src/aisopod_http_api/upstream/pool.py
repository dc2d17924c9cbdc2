"""A keep-alive connection pool per provider origin, and the one `send` the proxy uses.

LIFO reuse (the warmest connection first), idle connections expire after `keepalive_s`,
at most `max_per_origin` connections per origin (more requests wait for one). A request on
a reused connection that dies before any response byte is retried once on a fresh
connection: the server closed an idle keep-alive connection and never saw the request.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aisopod_http_api.upstream.connection import (
    Exchange,
    UpstreamClosed,
    UpstreamConnection,
    UpstreamTimeout,
)


class UpstreamConnectError(ConnectionError):
    """The provider could not be reached (refused, DNS, TLS)."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def parse_base_url(base_url: str) -> tuple[Origin, str]:
    """`https://api.example.com/v1` → (origin, "/v1"). Raises ValueError when unusable."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Origin(parts.scheme, parts.hostname, port), parts.path.rstrip("/")


@dataclass
class _OriginState:
    slots: asyncio.Semaphore
    idle: list[UpstreamConnection] = field(default_factory=list)


class UpstreamPool:
    def __init__(
        self,
        *,
        max_per_origin: int = 1024,
        keepalive_s: float = 30.0,
        max_idle_per_origin: int = 256,
    ) -> None:
        self.max_per_origin = max_per_origin
        self.keepalive_s = keepalive_s
        self.max_idle_per_origin = max_idle_per_origin
        self._origins: dict[Origin, _OriginState] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closing = False

    def _state(self, origin: Origin) -> _OriginState:
        state = self._origins.get(origin)
        if state is None:
            state = _OriginState(asyncio.Semaphore(self.max_per_origin))
            self._origins[origin] = state
        return state

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def send(
        self,
        origin: Origin,
        request: bytes,
        on_start: Callable[[Exchange], None] | None = None,
        timeout: float | None = None,
    ) -> Exchange:
        """Write `request` and wait for the response head, within `timeout` seconds once
        connected (else `UpstreamTimeout`; the caller bounds connecting). The caller must
        read the exchange to its end or `abort()` it, and re-arms its deadline as it likes
        (`expire_in`); `on_start` sees each exchange as it begins (so a watcher can abort it).
        """
        state = self._state(origin)
        for attempt in range(2):
            conn, reused = await self._acquire(origin, state, timeout)
            exchange = conn.start(request)
            exchange.expire_in(timeout)
            if on_start is not None:
                on_start(exchange)
            try:
                await exchange.head
                return exchange
            except UpstreamClosed:
                stale = reused and not exchange.received_any and not exchange.aborted
                if stale and attempt == 0:
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise
            except BaseException:
                exchange.abort()  # cancelled or timed out while waiting for the head
                raise
        raise AssertionError("unreachable")

    async def _acquire(
        self, origin: Origin, state: _OriginState, timeout: float | None
    ) -> tuple[UpstreamConnection, bool]:
        now = time.monotonic()
        while state.idle:
            conn = state.idle.pop()
            if conn.usable and now - conn.idle_since < self.keepalive_s:
                return conn, True
            conn.close()
        await state.slots.acquire()
        loop = asyncio.get_running_loop()

        def on_idle(conn: UpstreamConnection) -> None:
            if self._closing or len(state.idle) >= self.max_idle_per_origin:
                conn.close()
                return
            conn.idle_since = time.monotonic()
            state.idle.append(conn)

        def on_closed(conn: UpstreamConnection) -> None:
            state.slots.release()
            if conn in state.idle:
                state.idle.remove(conn)

        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(loop, on_idle, on_closed),
                    origin.host,
                    origin.port,
                    ssl=self._ssl_context() if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
        except TimeoutError:
            state.slots.release()
            raise UpstreamTimeout(f"connecting to {origin.authority} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            state.slots.release()
            raise UpstreamConnectError(f"cannot connect to {origin.authority}: {exc}") from exc
        except BaseException:
            state.slots.release()
            raise
        return conn, False

    def idle_count(self, origin: Origin) -> int:
        state = self._origins.get(origin)
        return len(state.idle) if state else 0

    async def close(self) -> None:
        self._closing = True
        for state in self._origins.values():
            for conn in list(state.idle):
                conn.close()
            state.idle.clear()
