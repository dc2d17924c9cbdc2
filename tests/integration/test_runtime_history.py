"""History read through each runtime's transcript cache, on the shared stack's 2 runtimes:
what the model is sent and what `chat.history` answers stay exact across turns served by
either replica, `sessions.reset` and `sessions.delete`."""

from __future__ import annotations

import uuid

import pytest

from aisopod.errors import NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_requests,
    fake_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration

READS = 6
"""chat.history calls per check: the queue group spreads them over both replicas."""


async def history(rt: RuntimeClient, key: str) -> list[str]:
    """The session's history as every replica answers it (all must agree)."""
    seen = []
    for _ in range(READS):
        messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
        seen.append([m["content"] for m in messages])
    assert all(s == seen[0] for s in seen)
    return seen[0]


async def turn(rt: RuntimeClient, stack, key: str, text: str) -> list[str]:
    """One turn; the contents of the messages the model was sent (system prompt left out)."""
    done = await rt.send_and_wait(key, text)
    assert done["status"] == "ok"
    (request,) = fake_requests(stack.fake_url, text)
    return [m["content"] for m in request["messages"] if m["role"] != "system"]


async def test_history_stays_exact_across_replicas_reset_and_delete(
    rt: RuntimeClient, stack
) -> None:
    key = await fake_session(rt, "hist")
    marker = uuid.uuid4().hex[:8]
    expected: list[str] = []
    for n in range(4):
        ask = f"{marker} turn {n}"
        sent = await turn(rt, stack, key, ask)
        assert sent == [*expected, ask]
        expected = await history(rt, key)
        assert expected[-2] == ask and len(expected) == 2 * (n + 1)

    assert await rt.call("sessions.reset", {"key": key}) == {"ok": True}
    assert await history(rt, key) == []
    ask = f"{marker} after reset"
    assert await turn(rt, stack, key, ask) == [ask]
    assert (await history(rt, key))[0] == ask

    assert await rt.call("sessions.delete", {"key": key}) == {"ok": True}
    assert await history(rt, key) == []
    with pytest.raises(NotFound):  # a deleted session is gone; its next message recreates it
        await rt.call("sessions.patch", {"key": key, "model": "fake/fake-small"})
    ask = f"{marker} after delete"
    assert await turn(rt, stack, key, ask) == [ask]
    assert len(await history(rt, key)) == 2
