"""Run events: numbering, throttled self-sufficient deltas, terminal events, origin header."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.errors import TimeoutError as NatsTimeout

from aisopod.catalogue.run_events import RunUsage
from aisopod.conformance import checked_event
from aisopod.principal import H_ORIGIN_CONN
from aisopod.subjects import Subjects
from aisopod_runtime.emitter import H_MSG_ID, THROTTLE_S, RunEmitter


class RecordingBus:
    """Stands in for `Bus.publish_event` only: records what would be published, checked
    against the event's model as the real bus does with `validate_replies` on."""

    subjects = Subjects()

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, str] | None]] = []

    async def publish_event(self, name: str, payload: dict[str, Any], headers=None) -> int:
        self.events.append((name, checked_event(name, payload), headers))
        return len(self.events)

    async def send_event(self, name: str, payload: dict[str, Any], headers=None) -> Any:
        """`Bus.send_event`: sent now, the ack (or its failure) in the returned future."""
        ack = asyncio.get_running_loop().create_future()
        try:
            ack.set_result(await self.publish_event(name, payload, headers))
        except Exception as exc:
            ack.set_exception(exc)
        return ack


def chat(bus: RecordingBus) -> list[dict[str, Any]]:
    return [p for n, p, _ in bus.events if n == "chat.event"]


async def test_deltas_are_throttled_and_each_carries_the_whole_text() -> None:
    bus = RecordingBus()
    emitter = RunEmitter(bus, "r1", "agent:main:x", "conn-1")  # type: ignore[arg-type]
    words = [f" w{i}" for i in range(50)]
    for word in words:
        await emitter.add_text(word)  # a burst: far faster than the throttle
    await asyncio.sleep(THROTTLE_S * 1.5)  # the trailing flush fires
    deltas = chat(bus)
    assert 1 <= len(deltas) <= 3
    assert deltas[-1]["message"]["content"] == "".join(words)
    joined = ""
    for delta in deltas:
        joined += delta["delta"]
        assert delta["message"]["content"] == joined
    await emitter.final("".join(words), RunUsage(total_tokens=5), "m1")
    events = chat(bus)
    assert events[-1]["state"] == "final" and events[-1]["message"]["id"] == "m1"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(h[H_ORIGIN_CONN] == "conn-1" for _, _, h in bus.events)
    ids = [h[H_MSG_ID] for _, _, h in bus.events]
    assert len(set(ids)) == len(ids) and all(i.startswith("r1:") for i in ids)


async def test_no_delta_after_the_final_event() -> None:
    bus = RecordingBus()
    emitter = RunEmitter(bus, "r2", "k", None)  # type: ignore[arg-type]
    await emitter.add_text("a")
    await asyncio.sleep(0)  # the stream waits: the first delta goes out
    await emitter.add_text(" b")  # within the throttle window: scheduled
    await emitter.final("a b", None, None)
    await asyncio.sleep(THROTTLE_S * 1.5)
    states = [e["state"] for e in chat(bus)]
    assert states == ["delta", "final"]
    assert H_ORIGIN_CONN not in bus.events[0][2]


async def test_error_and_abort_events_and_reaper_numbering() -> None:
    bus = RecordingBus()
    emitter = RunEmitter(bus, "r3", "k", None)  # type: ignore[arg-type]
    emitter.start_at(41)
    await emitter.error("boom", "part")
    names = [(n, p["seq"]) for n, p, _ in bus.events]
    assert names == [("agent.event", 42), ("chat.event", 42)]
    assert chat(bus)[-1] == {
        "runId": "r3",
        "sessionKey": "k",
        "seq": 42,
        "state": "error",
        "errorMessage": "boom",
        "message": {"role": "assistant", "content": "part"},
    }
    other = RunEmitter(bus, "r4", "k", None)  # type: ignore[arg-type]
    await other.aborted("so far")
    assert chat(bus)[-1]["state"] == "aborted"


class FlakyBus(RecordingBus):
    """The bus of a NATS restart: the first publishes time out (the ack was lost with the
    connection, or the server was down), then it works again."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts: list[dict[str, str] | None] = []

    async def publish_event(self, name: str, payload: dict[str, Any], headers=None) -> int:
        self.attempts.append(headers)
        if self.failures:
            self.failures -= 1
            raise NatsTimeout
        return await super().publish_event(name, payload, headers)


async def test_an_event_is_retried_through_a_nats_restart_with_one_message_id() -> None:
    bus = FlakyBus(failures=3)
    emitter = RunEmitter(bus, "r3", "k", "conn-3")  # type: ignore[arg-type]
    await emitter.final("done", None, "m3")
    assert [e["state"] for e in chat(bus)] == ["final"]  # published once, in the end
    ids = {h[H_MSG_ID] for h in bus.attempts if h}
    assert len(bus.attempts) == 4 and len(ids) == 1  # JetStream de-duplicates by this id
    reaper = RunEmitter(bus, "r3", "k", None)  # type: ignore[arg-type]
    reaper.start_at(0)
    await reaper.error("lease lost")
    assert not {h[H_MSG_ID] for _, _, h in bus.events[1:]} & ids  # never the same ids


async def test_an_instant_answer_has_no_delta_and_its_final_carries_the_text() -> None:
    bus = RecordingBus()
    emitter = RunEmitter(bus, "r5", "k", None)  # type: ignore[arg-type]
    for word in ("echo:", " hi", " there"):
        await emitter.add_text(word)  # the stream never waits: nothing is sent yet
    await emitter.text_done()
    await emitter.final(emitter.text, None, "m5")
    await asyncio.sleep(THROTTLE_S * 1.5)
    assert [(p["state"], p["message"]["content"]) for p in chat(bus)] == [
        ("final", "echo: hi there")
    ]


class SlowAckBus(RecordingBus):
    """Acks arrive later than the next send: events are pipelined, stored in send order."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, int]] = []
        self.unacked = 0
        self.most_unacked = 0

    async def send_event(self, name: str, payload: dict[str, Any], headers=None) -> Any:
        self.sent.append((name, payload["seq"]))
        self.unacked += 1
        self.most_unacked = max(self.most_unacked, self.unacked)
        ack = asyncio.get_running_loop().create_future()

        async def later() -> None:
            await asyncio.sleep(0.01)
            self.events.append((name, payload, headers))
            self.unacked -= 1
            ack.set_result(len(self.events))

        asyncio.get_running_loop().create_task(later())
        return ack


async def test_events_are_pipelined_in_order_and_terminal_ones_return_once_stored() -> None:
    bus = SlowAckBus()
    emitter = RunEmitter(bus, "r6", "k", None)  # type: ignore[arg-type]
    emitter.post_lifecycle("start")
    await emitter.add_text("a")
    await asyncio.sleep(0)  # the first delta goes out (chat.event, then agent.event)
    emitter.post_tool("start", "c1", "current_time")
    await emitter.final("a", None, "m6")
    assert [e["state"] for e in chat(bus)] == ["delta", "final"]  # stored when final returns
    await emitter.lifecycle("end")
    # Sent in call order; an event waits only for the one of its own name before it.
    assert bus.sent == [
        ("agent.event", 1),
        ("chat.event", 1),
        ("agent.event", 2),
        ("agent.event", 3),
        ("chat.event", 2),
        ("agent.event", 4),
    ]
    assert bus.most_unacked >= 2  # not one round trip per event
    assert [p["seq"] for n, p, _ in bus.events if n == "agent.event"] == [1, 2, 3, 4]


async def test_the_error_is_numbered_and_sent_before_the_lifecycle_end() -> None:
    """A stream cut while a delta is still scheduled: the error events, asked for first,
    come before the lifecycle end in seq and in send order, even when both are gathered
    (as the runner's conclusion does) and the error has a pending flush to cancel."""
    bus = SlowAckBus()
    emitter = RunEmitter(bus, "r7", "k", None)  # type: ignore[arg-type]
    emitter.post_lifecycle("start")
    await emitter.add_text("one two")
    await asyncio.sleep(0)  # the stream waits: the first delta goes out
    await emitter.add_text(" three")  # within the throttle window: a delta is scheduled
    await asyncio.gather(emitter.error("cut", "one two three"), emitter.lifecycle("error"))
    agent = [(p["seq"], p["stream"]) for n, p, _ in bus.events if n == "agent.event"]
    assert agent == [(1, "lifecycle"), (2, "assistant"), (3, "error"), (4, "lifecycle")]
    assert bus.sent == [
        ("agent.event", 1),
        ("chat.event", 1),
        ("agent.event", 2),
        ("agent.event", 3),
        ("chat.event", 2),
        ("agent.event", 4),
    ]
    assert [e["state"] for e in chat(bus)] == ["delta", "error"]  # the scheduled one dropped


async def test_posted_terminal_events_keep_their_order() -> None:
    bus = SlowAckBus()
    emitter = RunEmitter(bus, "r8", "k", None)  # type: ignore[arg-type]
    await emitter.add_text("so far")
    told = emitter.post_aborted("so far")
    ended = emitter.post_lifecycle("aborted")
    await asyncio.gather(ended, told)
    assert bus.sent == [("chat.event", 1), ("agent.event", 1)]
    assert [e["state"] for e in chat(bus)] == ["aborted"]


async def test_a_tool_steps_unsent_text_goes_out_before_the_next_step() -> None:
    """A model says something, then calls a tool, and the tool answers within the throttle
    window: the end of the first step's text is sent as a delta when that step ends. No
    later event carries it (`final` holds the last step's answer only)."""
    bus = RecordingBus()
    emitter = RunEmitter(bus, "r9", "k", None)  # type: ignore[arg-type]
    emitter.reset_text()
    await emitter.add_text("Let me")
    await asyncio.sleep(0)  # the stream waits: the first delta goes out
    await emitter.add_text(" check.")  # within the throttle window: scheduled
    emitter.step_done()
    emitter.post_tool("start", "c1", "current_time")
    emitter.post_tool("result", "c1", "current_time", result={"iso": "now"})
    emitter.reset_text()  # the next step, before the scheduled flush would have fired
    await emitter.add_text("It is now.")
    await emitter.text_done()
    await emitter.final(emitter.text, None, "m9")
    await asyncio.sleep(THROTTLE_S * 1.5)  # nothing left scheduled fires late
    assert [(p["state"], p["message"]["content"]) for p in chat(bus)] == [
        ("delta", "Let me"),
        ("delta", "Let me check."),
        ("final", "It is now."),
    ]
    agent = [
        (p["stream"], p["data"].get("text", p["data"].get("phase")))
        for n, p, _ in bus.events
        if n == "agent.event"
    ]
    assert agent == [
        ("assistant", "Let me"),
        ("assistant", "Let me check."),
        ("tool", "start"),
        ("tool", "result"),
    ]
