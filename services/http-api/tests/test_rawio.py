"""`rawio.unless_gone`: the work runs in the caller's task, a disconnect cancels it."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from aisopod_http_api.rawio import unless_gone

DEADLINE_S = 30.0


class Client:
    """An ASGI `receive` whose disconnect the test decides."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> Message:
        await self.gone.wait()
        return {"type": "http.disconnect"}


async def test_finished_work_is_true_and_leaves_the_task_uncancelled() -> None:
    client = Client()
    ran: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0)
        ran.append(str(id(asyncio.current_task())))

    assert await unless_gone(client.receive, work())
    assert ran == [str(id(asyncio.current_task()))]  # in the caller's own task
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_disconnect_cancels_the_work_and_the_caller_goes_on() -> None:
    client = Client()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a turn that would never end
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def leave() -> None:
        await started.wait()
        client.gone.set()

    leaving = asyncio.ensure_future(leave())
    async with asyncio.timeout(DEADLINE_S):
        assert not await unless_gone(client.receive, work())
    await leaving
    assert cancelled.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # the caller is not cancelled: it can still abort the run


async def test_work_that_turns_the_cancellation_into_an_error_is_still_gone() -> None:
    client = Client()
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleaned up and failed") from None

    async def leave() -> None:
        await started.wait()
        client.gone.set()

    leaving = asyncio.ensure_future(leave())
    async with asyncio.timeout(DEADLINE_S):
        assert not await unless_gone(client.receive, work())
    await leaving
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_the_works_own_error_propagates() -> None:
    async def work() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await unless_gone(Client().receive, work())


async def test_a_cancellation_from_elsewhere_propagates() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.Event().wait()

    outer = asyncio.ensure_future(unless_gone(Client().receive, work()))
    async with asyncio.timeout(DEADLINE_S):
        await started.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
