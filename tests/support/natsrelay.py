"""A TCP relay in front of nats-server that tests can cut or slow down: a real nats-py
connection living through a dropped link or a slow path, with nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class Relay:
    """Accepts on a free port and pipes each connection to nats-server. `cut` closes every
    piped connection at once (the bytes in flight are lost); `delay_s` holds every chunk
    from the server that long before passing it on (order kept), as a slow path would."""

    def __init__(self, target: str, *, delay_s: float = 0.0) -> None:
        parts = urlsplit(target)
        self.host, self.port = str(parts.hostname), int(parts.port or 4222)
        self.delay_s = delay_s
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_writer]
        pipes = (self._pipe(reader, up_writer, 0.0), self._pipe(up_reader, writer, self.delay_s))
        for pipe in pipes:
            task = asyncio.ensure_future(pipe)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if delay_s:
                    # Each chunk leaves delay_s after it arrived; timers of equal delay
                    # fire in the order they were set, so the stream's order holds.
                    loop.call_later(delay_s, _write_unless_closed, dst, data)
                    continue
                dst.write(data)
                await dst.drain()
        if delay_s:
            loop.call_later(delay_s, dst.close)
        else:
            dst.close()

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()


def _write_unless_closed(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)
