"""The live server: binds the socket, serves the app, reports where it listens."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import orjson

from .app import FakeUpstreamApp
from .config import FakeUpstreamConfig
from .http11 import HttpServer, start_server


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop when installed (about 1.5x the throughput), else the stdlib loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


class FakeServer:
    """`async with FakeServer(config) as server:` serves on `server.base_url` until exit."""

    def __init__(self, config: FakeUpstreamConfig) -> None:
        self.config = config
        self.app = FakeUpstreamApp(config)
        self._server: HttpServer | None = None
        self.port = 0

    @property
    def root_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI `base_url`: `http://HOST:PORT/v1`."""
        return f"{self.root_url}/v1"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await start_server(self.app, self.config.host, self.config.port)
        self.port = self._server.port

    async def close(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        await server.close()

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def write_ready_file(path: Path, url: str) -> None:
    """Write `{"url", "pid"}` atomically so a poller never reads half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps({"url": url, "pid": os.getpid()}))
    tmp.replace(path)


async def serve(config: FakeUpstreamConfig, ready_file: Path | None = None) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with FakeServer(config) as server:
        if ready_file is not None:
            write_ready_file(ready_file, server.base_url)
        print(f"aisopod-fake-upstream listening on {server.base_url}", flush=True)
        try:
            await stop.wait()
        finally:
            if ready_file is not None:
                ready_file.unlink(missing_ok=True)
