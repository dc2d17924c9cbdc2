"""wake, system-event, last-heartbeat, set-heartbeats and scheduled heartbeats on the shared
stack (two runtime replicas), over NATS as an edge would call them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from aisopod import codec
from aisopod.compat.natspy import flush_in_order
from aisopod.errors import Conflict, InvalidParams, NotFound
from aisopod.principal import Principal
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_requests,
    rt_fixture,
)

pytestmark = pytest.mark.integration
T = TypeVar("T")


def admin() -> Principal:
    """A fresh admin per config write: the control-write limit counts per principal."""
    return Principal(id=f"hb-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


async def until(
    probe: Callable[[], Awaitable[T | None] | T | None],
    timeout: float = 30.0,
    what: str = "condition",
) -> T:
    """`probe()` (awaited when it returns an awaitable) once it is truthy; fails at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def new_agent(rt: RuntimeClient, model: str = "echo/echo") -> str:
    agent_id = f"hb{uuid.uuid4().hex[:10]}"
    await rt.call("agents.create", {"id": agent_id, "name": agent_id, "model": model})
    return agent_id


async def history(rt: RuntimeClient, key: str) -> list[dict[str, Any]]:
    try:
        return list((await rt.call("chat.history", {"sessionKey": key}))["messages"])
    except NotFound:
        return []


class HeartbeatEvents:
    """Every `heartbeat` event published while the test runs."""

    def __init__(self, rt: RuntimeClient) -> None:
        self.rt = rt
        self.seen: list[dict[str, Any]] = []

    async def __aenter__(self) -> HeartbeatEvents:
        async def record(msg: Any) -> None:
            self.seen.append(codec.loads(msg.data))

        self.sub = await self.rt.bus.nc.subscribe(self.rt.bus.subjects.evt("heartbeat"), cb=record)
        await flush_in_order(self.rt.bus.nc, 5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sub.unsubscribe()

    def of(self, agent_id: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.seen
            if e["agentId"] == agent_id and all(e.get(k) == v for k, v in match.items())
        ]


@contextlib.asynccontextmanager
async def heartbeats(rt: RuntimeClient, agents: dict[str, Any]) -> AsyncIterator[None]:
    """Config `heartbeat.agents` set to `agents` on every replica; removed afterwards."""

    async def apply(section: Any) -> None:
        current = await rt.call("config.get", {})
        await rt.call(
            "config.apply",
            {"patch": {"heartbeat": section}, "baseHash": current["hash"]},
            as_=admin(),
            timeout=30,
        )

    await apply({"agents": agents})
    try:
        yield
    finally:
        await apply(None)


# -- system events into the next turn ---------------------------------------------------------


async def test_system_events_reach_the_next_turns_prompt(rt: RuntimeClient, stack) -> None:
    agent_id = await new_agent(rt, "fake/fake-small")
    key = f"agent:{agent_id}:inbox"
    first, second = f"door bell {uuid.uuid4().hex}", f"parcel {uuid.uuid4().hex}"
    one = await rt.call("system-event", {"text": first, "sessionKey": key})
    assert one == {"ok": True, "sessionKey": key, "queued": 1, "runId": None}
    two = await rt.call("system-event", {"text": second, "agentId": agent_id, "sessionKey": key})
    assert two["queued"] == 2

    question = f"what happened {uuid.uuid4().hex}"
    done = await rt.send_and_wait(key, question)
    assert done["status"] == "ok"
    # The model saw both events in one system message right before the question.
    [request] = fake_requests(stack.fake_url, question)
    messages = request["messages"]
    asked = next(i for i, m in enumerate(messages) if question in str(m["content"]))
    notice = messages[asked - 1]
    assert notice["role"] == "system"
    assert first in notice["content"] and second in notice["content"]
    assert notice["content"].index(first) < notice["content"].index(second)
    # The transcript keeps them, in the same place, as one labelled system message.
    shown = await history(rt, key)
    roles = [(m["role"], m.get("label")) for m in shown]
    assert roles == [("system", "system-event"), ("user", None), ("assistant", None)]
    assert first in shown[0]["content"] and shown[0]["runId"] == done["runId"]

    # Taken once: the next turn has them in its history only, and the queue is empty.
    again = f"and now {uuid.uuid4().hex}"
    assert (await rt.send_and_wait(key, again))["status"] == "ok"
    [later] = fake_requests(stack.fake_url, again)
    notices = [m for m in later["messages"] if m["role"] == "system" and first in m["content"]]
    assert len(notices) == 1
    assert len(await history(rt, key)) == 5
    third = await rt.call("system-event", {"text": "x", "sessionKey": key})
    assert third["queued"] == 1


async def test_system_event_errors(rt: RuntimeClient) -> None:
    agent_id = await new_agent(rt)
    with pytest.raises(NotFound) as missing:
        await rt.call("system-event", {"text": "x", "agentId": f"nobody{uuid.uuid4().hex[:6]}"})
    assert missing.value.data.get("code") == "AGENT_NOT_FOUND"
    with pytest.raises(InvalidParams) as mismatch:
        await rt.call(
            "system-event", {"text": "x", "agentId": agent_id, "sessionKey": "agent:main:x"}
        )
    assert mismatch.value.data.get("code") == "AGENT_MISMATCH"
    with pytest.raises(InvalidParams):
        await rt.call("system-event", {"text": "   "})
    with pytest.raises(InvalidParams):
        await rt.call("system-event", {"text": "x", "sessionKey": "agent::broken"})
    # A full queue refuses (and keeps what it holds) instead of dropping old events.
    key = f"agent:{agent_id}:full"
    for n in range(50):
        await rt.call("system-event", {"text": f"event {n}", "sessionKey": key})
    with pytest.raises(Conflict) as full:
        await rt.call("system-event", {"text": "one too many", "sessionKey": key})
    assert full.value.data.get("code") == "SYSTEM_EVENTS_FULL"
    done = await rt.send_and_wait(key, "go")
    assert done["status"] == "ok"
    [notice] = [m for m in await history(rt, key) if m["role"] == "system"]
    assert "event 0" in notice["content"] and "event 49" in notice["content"]
    assert "one too many" not in notice["content"]


# -- wake --------------------------------------------------------------------------------------


async def test_wake_now_runs_the_heartbeat_turn(rt: RuntimeClient) -> None:
    agent_id = await new_agent(rt)
    text = f"deploy finished {uuid.uuid4().hex}"
    async with HeartbeatEvents(rt) as events:
        woke = await rt.call(
            "wake", {"mode": "now", "text": text, "agentId": agent_id, "idempotencyKey": text[-12:]}
        )
        assert woke["ok"] is True and woke["mode"] == "now" and woke["queued"] == 1
        assert woke["agentId"] == agent_id and woke["sessionKey"] == f"agent:{agent_id}:main"
        run_id = woke["runId"]
        assert run_id
        # The same idempotency key answers the first call again and starts nothing.
        repeat = await rt.call(
            "wake", {"mode": "now", "text": text, "agentId": agent_id, "idempotencyKey": text[-12:]}
        )
        assert repeat == woke
        ended = await rt.call("agent.wait", {"runId": run_id, "timeoutMs": 20_000})
        assert ended["status"] == "ok"
        [event] = await until(lambda: events.of(agent_id, runId=run_id), what="heartbeat event")
    # echo repeats the default prompt, which ends asking for HEARTBEAT_OK: an acknowledgement.
    assert event["trigger"] == "wake" and event["status"] == "ok-token"
    assert event["sessionKey"] == woke["sessionKey"] and "preview" not in event
    assert "dueAtMs" not in event
    shown = await history(rt, woke["sessionKey"])
    assert [m["role"] for m in shown] == ["system", "user", "assistant"]
    assert text in shown[0]["content"] and "HEARTBEAT_OK" in shown[1]["content"]
    last = await rt.call("last-heartbeat", {"agentId": agent_id})
    assert last["last"]["runId"] == run_id and last["agents"] == []  # none scheduled


async def test_wake_next_heartbeat_waits_for_the_sessions_next_turn(rt: RuntimeClient) -> None:
    agent_id = await new_agent(rt)
    key = f"agent:{agent_id}:main"
    text = f"reminder {uuid.uuid4().hex}"
    woke = await rt.call("wake", {"mode": "next-heartbeat", "text": text, "sessionKey": key})
    assert woke["runId"] is None and woke["queued"] == 1 and woke["agentId"] == agent_id
    assert await history(rt, key) == []  # nothing ran
    assert (await rt.send_and_wait(key, "hello"))["status"] == "ok"
    assert text in (await history(rt, key))[0]["content"]


async def test_wake_errors(rt: RuntimeClient) -> None:
    agent_id = await new_agent(rt)
    with pytest.raises(NotFound):
        await rt.call("wake", {"mode": "now", "text": "x", "agentId": f"ghost{agent_id}"})
    with pytest.raises(InvalidParams) as mismatch:
        await rt.call(
            "wake",
            {"mode": "now", "text": "x", "agentId": agent_id, "sessionKey": "agent:main:main"},
        )
    assert mismatch.value.data.get("code") == "AGENT_MISMATCH"
    for bad in ({"mode": "later", "text": "x"}, {"mode": "now"}, {"mode": "now", "text": ""}):
        with pytest.raises(InvalidParams):
            await rt.call("wake", bad)
    # Nothing was queued by the refused calls.
    assert await history(rt, f"agent:{agent_id}:main") == []
    queued = await rt.call("system-event", {"text": "probe", "agentId": agent_id})
    assert queued["queued"] == 1


# -- the switch --------------------------------------------------------------------------------


async def test_set_heartbeats_switches_every_replica(rt: RuntimeClient) -> None:
    agent_id = await new_agent(rt)
    with pytest.raises(InvalidParams):
        await rt.call("set-heartbeats", {"enabled": "maybe"})
    with pytest.raises(InvalidParams):
        await rt.call("set-heartbeats", {})
    assert await rt.call("set-heartbeats", {"enabled": False}) == {"ok": True, "enabled": False}
    try:
        # Every replica reads the switch: ask each of them (the calls spread over both).
        for _ in range(4):
            assert (await rt.call("last-heartbeat", {}))["enabled"] is False
        woke = await rt.call("wake", {"mode": "now", "text": "queued only", "agentId": agent_id})
        assert woke["runId"] is None and woke["queued"] == 1
        assert await history(rt, f"agent:{agent_id}:main") == []
    finally:
        assert (await rt.call("set-heartbeats", {"enabled": True}))["enabled"] is True
    assert (await rt.call("last-heartbeat", {}))["enabled"] is True


# -- scheduled heartbeats and quiet hours -------------------------------------------------------


def quiet_window_around_now(zone: str) -> dict[str, str]:
    """Quiet hours from two hours ago to two hours ahead, local time in `zone`."""
    now = datetime.now(UTC).astimezone(ZoneInfo(zone))
    start, end = now - timedelta(hours=2), now + timedelta(hours=2)
    return {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"), "timezone": zone}


async def test_scheduled_heartbeats_fire_once_per_slot_and_keep_quiet_hours(
    rt: RuntimeClient,
) -> None:
    loud, quiet = await new_agent(rt), await new_agent(rt)
    prompt = f"heartbeat check {uuid.uuid4().hex}"
    agents = {
        loud: {"every": "1s", "prompt": prompt},
        quiet: {
            "every": "1s",
            "prompt": prompt,
            "quietHours": quiet_window_around_now("Asia/Tokyo"),
        },
    }
    async with HeartbeatEvents(rt) as events, heartbeats(rt, agents):
        configured = await rt.call("last-heartbeat", {"agentId": loud})
        [info] = configured["agents"]
        assert info["everyMs"] == 1000 and info["prompt"] == prompt and info["nextDueAtMs"]
        await until(lambda: len(events.of(loud, trigger="schedule")) >= 4, what="4 heartbeats")
        await until(lambda: len(events.of(quiet)) >= 3, what="3 quiet slots")
        status = await rt.call("last-heartbeat", {})
    # Off the schedule: the jobs are gone with the config.
    after = await rt.call("last-heartbeat", {})
    assert {a["agentId"] for a in after["agents"]} & {loud, quiet} == set()

    fired = events.of(loud, trigger="schedule")
    slots = [e["dueAtMs"] for e in fired]
    assert len(slots) == len(set(slots)), sorted(slots)  # each slot once, on either replica
    assert all((s - slots[0]) % 1000 == 0 for s in slots)
    assert {e["status"] for e in fired} == {"sent"}
    # One turn per slot: each event's run asked the prompt exactly once.
    turns = [m for m in await history(rt, f"agent:{loud}:main") if m["role"] == "user"]
    assert all(m["content"] == prompt for m in turns)
    runs = [m["runId"] for m in turns]
    assert len(runs) == len(set(runs)) and {e["runId"] for e in fired} <= set(runs)

    skipped = events.of(quiet)
    assert {(e["status"], e.get("reason")) for e in skipped} == {("skipped", "quiet-hours")}
    assert await history(rt, f"agent:{quiet}:main") == []  # no turn ran
    by_agent = {a["agentId"]: a for a in status["agents"]}
    assert by_agent[quiet]["quietHours"]["timezone"] == "Asia/Tokyo"
    assert by_agent[quiet]["last"]["status"] == "skipped"
    assert by_agent[loud]["last"]["status"] == "sent"


async def test_heartbeat_config_is_validated(rt: RuntimeClient) -> None:
    current = await rt.call("config.get", {})
    for bad in (
        {"agents": {"main": {"every": "0s"}}},
        {"agents": {"main": {"every": "soon"}}},
        {"agents": {"main": {"quietHours": {"start": "22:00", "end": "22:00"}}}},
        {"agents": {"main": {"quietHours": {"start": "25:00", "end": "07:00"}}}},
        {
            "agents": {
                "main": {
                    "quietHours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}
                }
            }
        },
        {"agents": {"not an id": {}}},
        {"defaults": {"prompt": ""}},
    ):
        with pytest.raises(InvalidParams):
            await rt.call(
                "config.patch",
                {"patch": {"heartbeat": bad}, "baseHash": current["hash"]},
                as_=admin(),
            )
    assert (await rt.call("config.get", {}))["hash"] == current["hash"]
