"""Runs end to end on the shared stack: streaming, tool loop, abort, upstream failures,
idempotent retries, queueing per session."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from aisopod.errors import Conflict, NotFound
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_requests,
    fake_session,
    new_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration


async def test_streamed_chat_reaches_final_with_transcript_and_history(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "stream")
    done = await rt.send_and_wait(key, "alpha beta [[fake:words=24 chunk_delay_ms=15]]")
    assert (done["status"], done["sendStatus"]) == ("ok", "started")
    final = await rt.chat_final(done["runId"])
    assert final["state"] == "final" and final["sessionKey"] == key
    text = final["message"]["content"]
    assert len(text.split()) == 24 and text.startswith("echo: alpha beta")
    assert final["usage"]["completionTokens"] == 24
    deltas = [p for p in rt.of_run(done["runId"]) if p["state"] == "delta"]
    assert len(deltas) >= 2  # streamed, not one block
    assert [p["seq"] for p in rt.of_run(done["runId"])] == list(range(1, len(deltas) + 2))
    previous = ""
    for delta in deltas:  # each delta stands alone: the full text so far plus the new part
        content = delta["message"]["content"]
        assert content == previous + delta["delta"] and text.startswith(content)
        previous = content
    history = await rt.call("chat.history", {"sessionKey": key})
    roles = [(m["role"], m["content"]) for m in history["messages"]]
    assert roles == [
        ("user", "alpha beta [[fake:words=24 chunk_delay_ms=15]]"),
        ("assistant", text),
    ]
    assert all(m["runId"] == done["runId"] for m in history["messages"])
    await rt.lifecycle_end(done["runId"])
    lifecycle = [
        p["data"]["phase"]
        for p in rt.of_run(done["runId"], "agent.event")
        if p["stream"] == "lifecycle"
    ]
    assert lifecycle == ["start", "end"]
    listed = await rt.call("sessions.list", {"search": key})
    assert [s["key"] for s in listed["sessions"]] == [key]
    assert listed["sessions"][0]["lastMessage"] == text


async def test_default_agent_answers_offline_with_echo(rt: RuntimeClient) -> None:
    name = f"echo-{uuid.uuid4().hex[:8]}"
    result = await rt.call("agent", {"message": "hello offline", "sessionKey": name, "wait": True})
    assert result["status"] == "ok"
    assert result["result"]["text"] == "echo: hello offline"
    history = await rt.call("chat.history", {"sessionKey": f"agent:main:{name}"})
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


async def test_agent_with_wait_answers_once_the_run_end_is_stored(rt: RuntimeClient) -> None:
    """`agent` with `wait` is answered while its record's terminal write is on its way
    (runner.py, `told`): by then the answer is in history, the session's lane is free for
    the next message, and the record, read back, says what the answer said, with the
    lifecycle end's `endedAt`."""
    key = f"agent:main:told-{uuid.uuid4().hex[:8]}"
    result = await rt.call("agent", {"message": "first", "sessionKey": key, "wait": True})
    assert result["status"] == "ok" and result["result"]["text"] == "echo: first"
    nxt = await rt.call("chat.send", {"sessionKey": key, "message": "second"})
    assert nxt["status"] == "started"  # not in_flight: the lane was freed before the answer
    history = await rt.call("chat.history", {"sessionKey": key})
    assert [m["content"] for m in history["messages"]][:2] == ["first", "echo: first"]
    waited = await rt.call("agent.wait", {"runId": result["runId"], "timeoutMs": 10_000})
    end = await rt.lifecycle_end(result["runId"])
    assert (waited["status"], waited["endedAt"]) == ("ok", end["data"]["endedAt"])
    second = await rt.call("agent.wait", {"runId": nxt["runId"], "timeoutMs": 10_000})
    assert second["status"] == "ok"


async def test_the_default_echo_provider_streams_deltas(rt: RuntimeClient) -> None:
    """Without any provider configured, an answer arrives as a few `delta`s, then `final`."""
    words = "one two three four five six seven eight"
    done = await rt.send_and_wait(f"echo-stream-{uuid.uuid4().hex[:8]}", words)
    final = await rt.chat_final(done["runId"])
    assert final["message"]["content"] == f"echo: {words}"
    deltas = [p for p in rt.of_run(done["runId"]) if p["state"] == "delta"]
    assert 2 <= len(deltas) <= 4, deltas
    assert all(f"echo: {words}".startswith(d["message"]["content"]) for d in deltas)


async def test_tool_call_loop_through_the_fake_upstream(rt: RuntimeClient, stack) -> None:
    key = await fake_session(rt, "tools")
    marker = uuid.uuid4().hex
    ask = f'{marker} [[tool:current_time {{"timezone": "Europe/Paris"}}]]'
    done = await rt.send_and_wait(key, ask)
    assert done["status"] == "ok"
    await rt.lifecycle_end(done["runId"])  # the agent.event callbacks have caught up
    tool_events = [
        p["data"] for p in rt.of_run(done["runId"], "agent.event") if p["stream"] == "tool"
    ]
    assert [e["phase"] for e in tool_events] == ["start", "result"]
    assert tool_events[0]["args"] == {"timezone": "Europe/Paris"}
    assert tool_events[1]["result"]["timezone"] == "Europe/Paris"
    assert (
        "+01:00" in tool_events[1]["result"]["iso"] or "+02:00" in tool_events[1]["result"]["iso"]
    )
    final = await rt.chat_final(done["runId"])
    assert final["message"]["content"].startswith("tool current_time returned: {")
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1]["toolCalls"][0]
    assert call["name"] == "current_time" and messages[2]["toolCallId"] == call["id"]
    requests = fake_requests(stack.fake_url, marker)
    assert len(requests) == 2  # the question, then the question with the tool result
    assert "current_time" in {t["function"]["name"] for t in requests[0]["tools"]}
    assert requests[1]["messages"][-1]["role"] == "tool"


async def test_abort_mid_stream_keeps_partial_text(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "abort")
    started = await rt.call(
        "chat.send", {"sessionKey": key, "message": "go [[fake:words=400 chunk_delay_ms=20]]"}
    )
    run_id = started["runId"]
    await rt.wait_event("chat.event", lambda p: p["runId"] == run_id and p["state"] == "delta")
    aborted = await rt.call("chat.abort", {"sessionKey": key})
    assert aborted == {"aborted": True, "runIds": [run_id]}
    waited = await rt.call("agent.wait", {"runId": run_id, "timeoutMs": 10_000})
    assert waited["status"] == "aborted" and waited["endedAt"] >= waited["startedAt"]
    last = await rt.chat_final(run_id)
    assert last["state"] == "aborted"
    partial = last["message"]["content"]
    assert partial.startswith("echo:") and len(partial.split()) < 400
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"] == partial
    assert messages[-1]["stopReason"] == "aborted"
    again = await rt.call("chat.abort", {"sessionKey": key, "runId": run_id})
    assert again == {"aborted": False, "runIds": []}


@pytest.mark.parametrize(
    ("directive", "status", "attempts", "error_part"),
    [
        ("[[fake:status=500]]", "error", 3, "500"),
        ("one two three [[fake:cut_after=3]]", "error", 1, "cut"),
        ("[[fake:status=401]]", "error", 1, "401"),
    ],
)
async def test_upstream_failures_end_the_run_with_error_events(
    rt: RuntimeClient, stack, directive: str, status: str, attempts: int, error_part: str
) -> None:
    key = await fake_session(rt, "fail")
    marker = uuid.uuid4().hex
    done = await rt.send_and_wait(key, f"{marker} {directive}")
    assert done["status"] == status and error_part in done["error"]
    last = await rt.chat_final(done["runId"])
    assert last["state"] == "error" and error_part in last["errorMessage"]
    end = await rt.lifecycle_end(done["runId"])
    assert end["data"]["phase"] == "error"
    events = rt.of_run(done["runId"], "agent.event")
    # One subscription, one publisher: they arrive in seq order, the error before the end.
    assert [p["seq"] for p in events] == list(range(1, len(events) + 1))
    streams = [p["stream"] for p in events]
    assert "error" in streams and streams[-1] == "lifecycle" and events[-1] == end
    assert len(fake_requests(stack.fake_url, marker)) == attempts  # 5xx retried, others not
    record = await rt.call("agent.wait", {"runId": done["runId"], "timeoutMs": 100})
    assert record["status"] == "error"
    # The failure is in the history too: the question did not silently go unanswered.
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["runId"] == done["runId"] and messages[-1]["stopReason"] == "error"
    assert error_part in messages[-1]["error"]


async def test_a_stalled_upstream_ends_in_timeout(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "slow")
    done = await rt.send_and_wait(key, "wait [[fake:delay_ms=5000]]", timeoutMs=1000)
    assert done["status"] == "timeout" and "timed out" in done["error"]
    last = await rt.chat_final(done["runId"])
    assert last["state"] == "error" and "timed out" in last["errorMessage"]
    answer = (await rt.call("chat.history", {"sessionKey": key}))["messages"][-1]
    assert (answer["role"], answer["stopReason"]) == ("assistant", "timeout")
    assert answer["content"] == "" and "timed out" in answer["error"]


async def test_idempotent_retry_of_chat_send_runs_once(rt: RuntimeClient, stack) -> None:
    key = await fake_session(rt, "idem")
    marker = uuid.uuid4().hex
    params = {"sessionKey": key, "message": f"{marker} once", "idempotencyKey": marker}
    first = await rt.call("chat.send", params)
    second = await rt.call("chat.send", params)
    # The same run, as it is now: still going, or already ended (the fake answers fast).
    assert second["runId"] == first["runId"] and second["status"] in ("started", "ok")
    await rt.call("agent.wait", {"runId": first["runId"], "timeoutMs": 10_000})
    third = await rt.call("chat.send", params)  # still within the 5-minute window
    assert third == {**first, "status": "ok"}  # the same run, as it is now: ended
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert len(fake_requests(stack.fake_url, marker)) == 1


async def test_agent_claims_its_idempotency_key_with_the_reads(rt: RuntimeClient) -> None:
    """`agent` claims its idempotency key in the round trip of the run's reads
    (runner.submit): a first call that fails on a read (an unknown agent) leaves the key
    free; a repeat gets the first run's answer and starts nothing."""
    idem = uuid.uuid4().hex
    with pytest.raises(NotFound):
        await rt.call(
            "agent",
            {"message": "x", "agentId": "nobody", "sessionKey": "claim", "idempotencyKey": idem},
        )
    key = new_session("claim")
    params = {"message": "once", "sessionKey": key, "wait": True, "idempotencyKey": idem}
    first = await rt.call("agent", params)
    assert first["status"] == "ok" and first["result"]["text"] == "echo: once"
    assert await rt.call("agent", params) == first
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "once"),
        ("assistant", "echo: once"),
    ]


async def test_concurrent_duplicate_is_conflict_or_the_same_run(rt: RuntimeClient) -> None:
    key = new_session("idem2")
    params = {"sessionKey": key, "message": "dup", "idempotencyKey": uuid.uuid4().hex}
    outcomes = await asyncio.gather(
        *(rt.call("chat.send", params) for _ in range(4)), return_exceptions=True
    )
    runs = {o["runId"] for o in outcomes if isinstance(o, dict)}
    assert len(runs) == 1
    assert all(isinstance(o, (dict, Conflict)) for o in outcomes)


async def test_second_send_to_a_busy_session_is_queued_in_flight(rt: RuntimeClient) -> None:
    key = await fake_session(rt, "queue")
    first = await rt.call(
        "chat.send", {"sessionKey": key, "message": "first [[fake:words=30 chunk_delay_ms=20]]"}
    )
    second = await rt.call("chat.send", {"sessionKey": key, "message": "second"})
    assert first["status"] == "started" and second["status"] == "in_flight"
    for run in (first, second):
        waited = await rt.call("agent.wait", {"runId": run["runId"], "timeoutMs": 15_000})
        assert waited["status"] == "ok"
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [(m["role"], m["runId"]) for m in messages] == [
        ("user", first["runId"]),
        ("assistant", first["runId"]),
        ("user", second["runId"]),
        ("assistant", second["runId"]),
    ]
    # The second run saw the first exchange as context.
    assert messages[3]["content"] == "echo: second"


async def test_sends_racing_for_a_new_session_one_runs_the_other_stays_queued(
    rt: RuntimeClient,
) -> None:
    # Both may read the new session's lane as free and write their record `running` at
    # once (runner.submit); the one that loses the lane is set back to `queued` before it
    # answers, so a retry of its send still says `in_flight` while the first one runs.
    key = await fake_session(rt, "race")
    sends = [
        {
            "sessionKey": key,
            "message": f"{n} [[fake:words=60 chunk_delay_ms=50]]",
            "idempotencyKey": uuid.uuid4().hex,
        }
        for n in ("one", "two")
    ]
    answers = await asyncio.gather(*(rt.call("chat.send", p) for p in sends))
    assert sorted(a["status"] for a in answers) == ["in_flight", "started"]
    queued = next(n for n, a in enumerate(answers) if a["status"] == "in_flight")
    again = await rt.call("chat.send", sends[queued])
    assert again == answers[queued]
    for answer in answers:
        waited = await rt.call("agent.wait", {"runId": answer["runId"], "timeoutMs": 15_000})
        assert waited["status"] == "ok" and waited["endedAt"] >= waited["startedAt"]
    messages = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


async def test_inject_appends_and_broadcasts(rt: RuntimeClient) -> None:
    key = new_session("inject")
    result = await rt.call("chat.inject", {"sessionKey": key, "message": "note", "label": "sys"})
    event = await rt.wait_event(
        "chat.event", lambda p: p["sessionKey"] == key and p["state"] == "final"
    )
    assert event["message"] == {"role": "assistant", "content": "note", "id": result["messageId"]}
    (message,) = (await rt.call("chat.history", {"sessionKey": key}))["messages"]
    assert (message["id"], message["label"], message["role"]) == (
        result["messageId"],
        "sys",
        "assistant",
    )


async def test_agent_wait_unknown_run_is_not_found(rt: RuntimeClient) -> None:
    from aisopod.errors import NotFound

    with pytest.raises(NotFound):
        await rt.call("agent.wait", {"runId": "no-such-run"})
