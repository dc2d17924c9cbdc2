"""`sessions.compact` and automatic compaction on the shared stack (two runtime replicas),
summarised by the fake upstream (its `<conversation>` rule: `summary of N lines: …`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from aisopod.errors import Conflict, NotFound, Unavailable
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_requests,
    fake_session,
    new_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration

SUMMARY_PREFIX = "Summary of the earlier conversation (older messages were compacted):\n\n"
TINY_AGENT = "fake-tiny"


async def _exchange(rt: RuntimeClient, key: str, message: str) -> None:
    done = await rt.send_and_wait(key, message)
    assert done["status"] == "ok", done


async def _history(rt: RuntimeClient, key: str) -> list[dict[str, Any]]:
    return (await rt.call("chat.history", {"sessionKey": key}))["messages"]


async def _tiny_session(rt: RuntimeClient) -> str:
    """A session on `fake/fake-tiny` (contextWindow 400 in the test seed)."""
    with contextlib.suppress(Conflict):
        await rt.call(
            "agents.create", {"id": TINY_AGENT, "name": TINY_AGENT, "model": "fake/fake-tiny"}
        )
    key = await fake_session(rt, "tiny")
    return key.replace(":fake-small:", f":{TINY_AGENT}:")


@contextlib.contextmanager
def failing_summaries(fake_upstream: Any) -> Iterator[None]:
    """Every summary request (and only those) answers 500 until the block ends."""
    fake_upstream.program(status=500, match="<conversation>", times=1000)
    try:
        yield
    finally:
        fake_upstream.reset()


async def test_compaction_keeps_the_transcript_readable_and_shorter(
    rt: RuntimeClient, stack: Any
) -> None:
    key = await fake_session(rt, "compact")
    tag = uuid.uuid4().hex[:8]
    detail = " ".join(["detail"] * 20)  # long enough for the summary to be shorter
    for word in ("one", "two", "three", "four", "five", "six"):
        await _exchange(rt, key, f"turn {word} {tag} {detail}")
    before = await _history(rt, key)
    assert len(before) == 12

    done = await rt.call("sessions.compact", {"key": key, "keepTurns": 2})
    assert done["compacted"] is True
    # The fake's summary: the first words of each line of the conversation it was sent.
    lines = [
        f"user: turn {w} {tag} detail detail; assistant: echo: turn {w} {tag} detail"
        for w in ("one", "two", "three", "four")
    ]
    assert done["summary"] == "summary of 8 lines: " + "; ".join(lines)
    record = done["compaction"]
    assert record["compactedMessages"] == 8 and record["keptMessages"] == 4
    assert record["lastCompactedId"] == before[7]["id"] and record["auto"] is False
    assert record["model"] == "fake/fake-small"
    assert record["tokensAfter"] < record["tokensBefore"]

    after = await _history(rt, key)  # either replica answers
    assert len(after) == 5 < len(before)
    summary, *kept = after
    assert summary["id"] == done["entryId"] and summary["role"] == "system"
    assert summary["content"] == done["summary"] and summary["compaction"] == record
    assert kept == before[8:]  # the last two turns, unchanged
    preview = await rt.call("sessions.preview", {"keys": [key], "limit": 10})
    assert preview["previews"][0]["messages"][0]["text"].startswith("summary of 8 lines")

    # The next turn sends the summary and the kept turns, nothing older.
    await _exchange(rt, key, f"turn seven {tag} {detail}")
    (request,) = fake_requests(stack.fake_url, f"turn seven {tag}")
    sent = [(m["role"], m["content"]) for m in request["messages"][1:]]
    assert sent == [
        ("user", SUMMARY_PREFIX + done["summary"]),
        ("user", f"turn five {tag} {detail}"),
        ("assistant", f"echo: turn five {tag} {detail}"),
        ("user", f"turn six {tag} {detail}"),
        ("assistant", f"echo: turn six {tag} {detail}"),
        ("user", f"turn seven {tag} {detail}"),
    ]
    latest = await _history(rt, key)
    assert latest[:5] == after and [m["content"] for m in latest[5:]] == [
        f"turn seven {tag} {detail}",
        f"echo: turn seven {tag} {detail}",
    ]

    # Compacting again folds the earlier summary into the new one.
    again = await rt.call("sessions.compact", {"key": key, "keepTurns": 1})
    assert again["summary"].startswith("summary of 5 lines: earlier summary: summary of 8")
    final = await _history(rt, key)
    assert [m["id"] for m in final[1:]] == [m["id"] for m in latest[-2:]]


async def test_a_short_session_has_nothing_to_compact(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "short")
    await _exchange(rt, key, "only one")
    before = await _history(rt, key)
    done = await rt.call("sessions.compact", {"key": key})  # keepTurns from the config: 2
    assert done == {
        "key": key,
        "compacted": False,
        "reason": "nothing to compact: 1 turn(s), keeping 2",
    }
    assert await _history(rt, key) == before
    with pytest.raises(NotFound) as unknown:
        await rt.call("sessions.compact", {"key": new_session("never")})
    assert unknown.value.detail_code == "SESSION_NOT_FOUND"


async def test_a_failed_summary_writes_nothing(rt: RuntimeClient, fake_upstream: Any) -> None:
    key = await fake_session(rt, "fail")
    for word in ("a", "b", "c"):
        await _exchange(rt, key, f"say {word}")
    before = await _history(rt, key)
    with failing_summaries(fake_upstream), pytest.raises(Unavailable) as failed:
        await rt.call("sessions.compact", {"key": key, "keepTurns": 1}, timeout=30)
    assert failed.value.detail_code == "SUMMARY_FAILED"
    assert await _history(rt, key) == before


async def test_a_session_with_a_run_in_progress_is_not_compacted(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "busy")
    for word in ("a", "b", "c"):
        await _exchange(rt, key, f"say {word}")
    started = await rt.call(
        "chat.send", {"sessionKey": key, "message": "slow [[fake:delay_ms=3000]]"}
    )
    with pytest.raises(Conflict) as busy:
        await rt.call("sessions.compact", {"key": key, "keepTurns": 1})
    assert busy.value.detail_code == "SESSION_BUSY"
    done = await rt.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
    assert done["status"] == "ok"
    assert (await rt.call("sessions.compact", {"key": key, "keepTurns": 1}))["compacted"]


async def test_a_session_nearing_the_context_window_is_compacted_by_its_run(
    rt: RuntimeClient, stack: Any
) -> None:
    key = await _tiny_session(rt)
    filler = " ".join(["lorem"] * 45)  # ~270 characters: ~145 estimated tokens a turn
    tag = uuid.uuid4().hex[:8]
    for n in range(1, 5):
        await _exchange(rt, key, f"msg{n} {filler} {tag}")
    history = await _history(rt, key)
    entry = history[0]
    # Turn 3 neared the window but had only the 2 kept turns behind it; turn 4 compacted
    # turn 1 before it was sent.
    assert entry["role"] == "system" and entry["compaction"]["auto"] is True
    assert entry["compaction"]["compactedMessages"] == 2
    assert entry["content"].startswith("summary of 2 lines: user: msg1 lorem")
    assert [m["content"].split()[0] for m in history[1:] if m["role"] == "user"] == [
        "msg2",
        "msg3",
        "msg4",
    ]
    (request,) = fake_requests(stack.fake_url, f"msg4 {filler} {tag}")
    assert request["messages"][1]["content"] == SUMMARY_PREFIX + entry["content"]
    assert not any("msg1" in str(m["content"]) for m in request["messages"][2:])


async def test_a_failed_automatic_compaction_loses_nothing(
    rt: RuntimeClient, stack: Any, fake_upstream: Any
) -> None:
    key = await _tiny_session(rt)
    filler = " ".join(["ipsum"] * 45)
    tag = uuid.uuid4().hex[:8]
    with failing_summaries(fake_upstream):
        for n in range(1, 5):
            await _exchange(rt, key, f"keep{n} {filler} {tag}")  # every run still answers
    history = await _history(rt, key)
    assert not any("compaction" in m for m in history)
    assert [m["content"].split()[0] for m in history if m["role"] == "user"] == [
        "keep1",
        "keep2",
        "keep3",
        "keep4",
    ]
    (request,) = fake_requests(stack.fake_url, f"keep4 {filler} {tag}")
    assert [m["role"] for m in request["messages"]].count("user") == 4
