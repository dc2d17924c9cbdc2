"""Config writes (config.set/patch/apply) as a real client makes them: a write refused by
the control-write limit (`RATE_LIMITED`, `data.rule` `control_writes`, 3 per 60 s per
principal) is sent again after the `data.retryAfterMs` it names.

The suite's tests share one stack, and every client that signs in with the stack's admin
token is the same principal: its budget is spent by whichever earlier tests wrote within
the last minute, so a test writing as that principal must wait its turn like any operator
would. (Writes over NATS with a fresh principal per write never meet the limit; the tests
of the limit itself call without this helper, to see the refusal.)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aisopod.errors import RateLimited
from tests.support.ws_client import RpcError

T = TypeVar("T")

RULE = "control_writes"
# The rule's whole window (60 s) plus room for a loaded machine: the longest any retry
# hint can ask for, so a write that is still refused after it is a real failure.
DEADLINE_S = 90.0


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds to wait when `exc` is a control-write refusal, else None."""
    refused = isinstance(exc, RateLimited) or (
        isinstance(exc, RpcError) and exc.code == RateLimited.code
    )
    data = getattr(exc, "data", {}) if refused else {}
    if data.get("rule") != RULE:
        return None
    return max(int(data.get("retryAfterMs", 1000)), 1) / 1000


async def control_write(write: Callable[[], Awaitable[T]], *, deadline_s: float = DEADLINE_S) -> T:
    """`await write()`, again after each control-write refusal's retry hint, until
    `deadline_s` has passed (then the refusal is raised)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await write()
        except (RpcError, RateLimited) as exc:
            wait = retry_after_s(exc)
            if wait is None or time.monotonic() + wait > deadline:
                raise
            # The server's own hint, not a guess: the write fits once that much has passed.
            await asyncio.sleep(wait)


# `aisopod: <message> (<code>) <data as JSON>`: how the CLI reports an error on stderr.
CLI_ERROR = re.compile(r"\((-?\d+)\) (\{.*\})\s*$", re.S)


def cli_retry_after_s(stderr: str) -> float | None:
    """Seconds to wait when an `aisopod` CLI run failed on a control-write refusal."""
    found = CLI_ERROR.search(stderr)
    if found is None:
        return None
    try:
        data = json.loads(found.group(2))
    except ValueError:
        return None
    return retry_after_s(RpcError({"code": int(found.group(1)), "data": data}))
