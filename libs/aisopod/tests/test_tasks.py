"""cancel_and_wait ends a task even when a cancellation is swallowed under it."""

from __future__ import annotations

import asyncio

import pytest

from aisopod.tasks import cancel_and_wait


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def swallows_the_first() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # as a library that returns the result that came with it
        await asyncio.sleep(3600)

    task = asyncio.create_task(swallows_the_first())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task, again_after_s=0.05), timeout=60.0)
    assert swallowed.is_set() and task.cancelled()


async def test_the_exception_a_task_ended_with_is_raised() -> None:
    async def fails() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(fails())
    await asyncio.wait({task}, timeout=60.0)
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)
