"""Stopping a background task for sure."""

from __future__ import annotations

import asyncio
from typing import Any

AGAIN_AFTER_S = 1.0


async def cancel_and_wait(task: asyncio.Task[Any], *, again_after_s: float = AGAIN_AFTER_S) -> None:
    """Cancel `task` and return once it has ended, cancelling it again every
    `again_after_s` while it still runs: code under it may swallow a cancellation (an inner
    task that finishes together with it hands back its result instead), and a stop that
    awaits such a task once would wait for ever. An exception the task ended with is
    raised here, as awaiting it would."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_after_s)
    if not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
