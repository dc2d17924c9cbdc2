"""A second gateway client for browser tests: `WsClient` on an event loop of its own thread.

Playwright's sync API owns the test's thread, and the other client must stay connected
while the page is driven (an approval's `waitDecision` runs while the page clicks), so the
client lives on a loop in a background thread and the test calls it synchronously:

    with OtherClient.connect(stack.ws_url, token=stack.admin_token) as other:
        other.call("config.get")
        pending = other.submit(lambda ws: ws.call("exec.approval.waitDecision", {...}))
        ...                      # drive the page
        pending.result(timeout=10)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from tests.support.control_writes import DEADLINE_S, control_write
from tests.support.ws_client import WsClient

T = TypeVar("T")


class EventLoopThread:
    """An asyncio loop running in a daemon thread; `run` executes a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class OtherClient:
    """A connected `WsClient` driven from synchronous test code."""

    def __init__(self, runner: EventLoopThread, ws: WsClient, owns_runner: bool) -> None:
        self.runner = runner
        self.ws = ws
        self._owns_runner = owns_runner

    @classmethod
    def connect(
        cls, url: str, *, runner: EventLoopThread | None = None, **kwargs: Any
    ) -> OtherClient:
        """Connect like `WsClient.connect(url, **kwargs)`; a failed handshake raises its
        `RpcError` here."""
        own = runner is None
        loop_thread = runner or EventLoopThread()
        try:
            ws = loop_thread.run(WsClient.connect(url, **kwargs))
        except BaseException:
            if own:
                loop_thread.close()
            raise
        return cls(loop_thread, ws, own)

    def call(self, method: str, params: Any = None, *, timeout: float = 10.0) -> Any:
        return self.runner.run(self.ws.call(method, params, timeout=timeout), timeout + 5)

    def presence_until(
        self, match: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """`system-presence`, asked again until `match` holds or `timeout` passes (then the
        last answer): a client connected to another replica shows up there up to the
        presence grace after its hello (docs/ws-gateway.md, Presence)."""

        async def poll() -> list[dict[str, Any]]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                entries: list[dict[str, Any]] = await self.ws.call("system-presence")
                if match(entries) or loop.time() >= deadline:
                    return entries
                await asyncio.sleep(0.1)

        return self.runner.run(poll(), timeout + 15)

    def write_config(self, method: str, params: Any, *, timeout: float = 10.0) -> Any:
        """A config.set/patch/apply that waits out the control-write limit's retry hint
        (tests/support/control_writes.py): the admin token's budget is shared by tests."""

        async def write() -> Any:
            return await control_write(lambda: self.ws.call(method, params, timeout=timeout))

        return self.runner.run(write(), DEADLINE_S + timeout + 5)

    def submit(self, fn: Callable[[WsClient], Awaitable[T]]) -> Future[T]:
        """Start `fn(ws)` on the client's loop; the future completes when it does."""
        return self.runner.submit(fn(self.ws))

    def next_event(self, name: str | Callable[[dict], bool], *, timeout: float = 10.0) -> dict:
        return self.runner.run(self.ws.next_event(name, timeout=timeout), timeout + 5)

    def close(self) -> None:
        try:
            self.runner.run(self.ws.close(), 10)
        finally:
            if self._owns_runner:
                self.runner.close()

    def __enter__(self) -> OtherClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
