"""cron, logs.tail, status, update.status, plugins and skills against the shared stack
(two runtime replicas), over NATS as an edge would call them."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from aisopod import codec
from aisopod.bus import Bus
from aisopod.errors import InvalidParams, NotFound
from aisopod.principal import Principal
from aisopod_runtime.plugins import GROUP, describe

pytestmark = pytest.mark.integration
T = TypeVar("T")


def admin() -> Principal:
    return Principal(id=f"p2-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


READER = Principal(id="p2-reader", scopes=("operator.read",))


async def until(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def events_since(bus: Bus, name: str, start_seq: int) -> list[dict[str, Any]]:
    """Payloads of event `name` captured by the EVENTS stream after `start_seq`."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=10.0,
    )
    sub = await bus.js.pull_subscribe(bus.subjects.evt(name), stream="EVENTS", config=config)
    out: list[dict[str, Any]] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            msgs = await sub.fetch(batch=min(pending, 200), timeout=2)
            pending -= len(msgs)
            out.extend(codec.loads(m.data) for m in msgs)
    finally:
        await sub.unsubscribe()
    return out


async def last_event_seq(bus: Bus) -> int:
    return (await bus.js.stream_info("EVENTS")).state.last_seq


# -- cron ----------------------------------------------------------------------------------


async def test_every_second_job_fires_once_per_slot_across_two_runtimes(bus, stack) -> None:
    assert len(stack.pids["runtime"]) == 2
    who = admin()
    seq = await last_event_seq(bus)
    job = await bus.call(
        "cron.add",
        {
            "name": f"p2-every-{uuid.uuid4().hex[:6]}",
            "schedule": {"kind": "every", "everyMs": 1000},
            "payload": {"kind": "systemEvent", "text": "tick"},
        },
        principal=who,
    )
    job_id = job["jobId"]
    try:

        async def four_done() -> list[dict[str, Any]] | None:
            runs = (await bus.call("cron.runs", {"jobId": job_id}, principal=READER))["runs"]
            done = [r for r in runs if r["status"] != "running"]
            return runs if len(done) >= 4 else None

        await until(four_done, what="four finished runs")
        await bus.call("cron.update", {"jobId": job_id, "patch": {"enabled": False}}, principal=who)

        async def settled() -> list[dict[str, Any]] | None:
            runs = (await bus.call("cron.runs", {"jobId": job_id}, principal=READER))["runs"]
            return runs if all(r["status"] != "running" for r in runs) else None

        runs = await until(settled, what="runs to finish")
    finally:
        await bus.call("cron.remove", {"jobId": job_id}, principal=who)
    dues = sorted(r["dueAtMs"] for r in runs)
    assert len(dues) == len(set(dues)), "a due slot fired twice"
    anchor = job["createdAtMs"]
    assert all((d - anchor) % 1000 == 0 for d in dues)
    assert {r["instance"] for r in runs} <= {"runtime-1", "runtime-2"}
    assert {r["trigger"] for r in runs} == {"schedule"}
    events = [e for e in await events_since(bus, "cron.event", seq) if e["jobId"] == job_id]
    started = [e["runId"] for e in events if e["action"] == "started"]
    assert sorted(started) == sorted(r["runId"] for r in runs)
    assert events[0]["action"] == "added"
    assert events[-1]["action"] == "removed"


async def test_at_job_fires_exactly_once_and_run_now_is_manual(bus) -> None:
    who = admin()
    at = (datetime.now(UTC) + timedelta(milliseconds=1200)).isoformat()
    job = await bus.call(
        "cron.add",
        {
            "name": "p2-at",
            "schedule": {"kind": "at", "at": at},
            "payload": {"kind": "agentTurn", "message": "hello from cron"},
        },
        principal=who,
    )
    job_id = job["jobId"]
    try:

        async def fired_and_idle() -> dict[str, Any] | None:
            jobs = (await bus.call("cron.list", {"includeDisabled": True}, principal=READER))[
                "jobs"
            ]
            mine = next(j for j in jobs if j["jobId"] == job_id)
            done = mine["lastStatus"] not in (None, "running") and not mine["running"]
            return mine if done and mine["nextRunAtMs"] is None else None

        await until(fired_and_idle, what="the at job to fire")
        runs = (await bus.call("cron.runs", {"jobId": job_id}, principal=READER))["runs"]
        assert len(runs) == 1 and runs[0]["trigger"] == "schedule"
        manual = await bus.call("cron.run", {"jobId": job_id}, principal=who)

        async def manual_done() -> list[dict[str, Any]] | None:
            runs = (await bus.call("cron.runs", {"jobId": job_id}, principal=READER))["runs"]
            mine = [r for r in runs if r["runId"] == manual["runId"]]
            return runs if mine and mine[0]["status"] != "running" else None

        runs = await until(manual_done, what="the manual run")
        assert [r["trigger"] for r in runs] == ["manual", "schedule"]
    finally:
        await bus.call("cron.remove", {"jobId": job_id}, principal=who)
    with pytest.raises(NotFound):
        await bus.call("cron.runs", {"jobId": job_id}, principal=READER)


async def test_cron_status_counts_jobs_and_names_the_next_wake(bus) -> None:
    who = admin()
    before = await bus.call("cron.status", {}, principal=READER)
    assert before["enabled"] is True
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    jobs = [
        await bus.call(
            "cron.add",
            {
                "name": f"p2-status-{n}",
                "schedule": {"kind": "at", "at": at},
                "payload": {"kind": "systemEvent", "text": "status check"},
                "enabled": enabled,
            },
            principal=who,
        )
        for n, (at, enabled) in enumerate([(soon, True), (later, True), (soon, False)])
    ]
    try:
        status = await bus.call("cron.status", {}, principal=READER)
        assert status["jobs"] == before["jobs"] + 3
        assert status["enabledJobs"] == before["enabledJobs"] + 2
        assert status["running"] >= 0
        # The soonest enabled job is the next wake (another test's job may be sooner still);
        # the disabled one, due as soon, never is.
        assert status["nextWakeAtMs"] <= jobs[0]["nextRunAtMs"]
        if status["nextWakeAtMs"] == jobs[0]["nextRunAtMs"]:
            assert status["nextJobId"] == jobs[0]["jobId"]
        assert status["nextJobId"] != jobs[2]["jobId"]
    finally:
        for job in jobs:
            await bus.call("cron.remove", {"jobId": job["jobId"]}, principal=who)
    after = await bus.call("cron.status", {}, principal=READER)
    assert (after["jobs"], after["enabledJobs"]) == (before["jobs"], before["enabledJobs"])


async def test_cron_rejects_bad_expressions(bus) -> None:
    with pytest.raises(InvalidParams):
        await bus.call(
            "cron.add",
            {
                "name": "bad",
                "schedule": {"kind": "cron", "expr": "99 * * * *"},
                "payload": {"kind": "systemEvent", "text": "x"},
            },
            principal=admin(),
        )


# -- logs.tail -----------------------------------------------------------------------------


async def test_logs_tail_follows_new_lines_with_filters(bus) -> None:
    start = await bus.call("logs.tail", {"limit": 1}, principal=READER)
    cursor = start["cursor"]
    current = await bus.call("config.get", {}, principal=READER)
    title = f"logs-{uuid.uuid4().hex[:6]}"
    written = await bus.call(
        "config.patch",
        {"patch": {"ui": {"title": title}}, "baseHash": current["hash"]},
        principal=admin(),
    )
    try:
        seen: list[dict[str, Any]] = []

        async def follow() -> bool:
            nonlocal cursor
            page = await bus.call(
                "logs.tail",
                {"cursor": cursor, "service": "auth", "level": "info"},
                principal=READER,
            )
            assert page["cursor"] >= cursor
            cursor = page["cursor"]
            seen.extend(page["lines"])
            return any(
                line["message"] == "configuration applied"
                and line.get("fields", {}).get("hash") == written["hash"]
                for line in seen
            )

        await until(follow, what="auth's 'configuration applied' line")
        assert {line["service"] for line in seen} == {"auth"}
        assert all(line["seq"] > start["cursor"] for line in seen)
        errors = await bus.call(
            "logs.tail", {"cursor": start["cursor"], "level": "error"}, principal=READER
        )
        assert all(line["level"] in ("error", "critical") for line in errors["lines"])
        runtime_tail = await bus.call(
            "logs.tail", {"limit": 50, "service": "runtime"}, principal=READER
        )
        assert 0 < len(runtime_tail["lines"]) <= 50
        assert {line["service"] for line in runtime_tail["lines"]} == {"runtime"}
    finally:
        now = await bus.call("config.get", {}, principal=READER)
        await bus.call(
            "config.patch",
            {"patch": {"ui": {"title": current["config"]["ui"]["title"]}}, "baseHash": now["hash"]},
            principal=admin(),
        )
    ahead = await bus.call("logs.tail", {"cursor": cursor + 10_000_000}, principal=READER)
    assert ahead["reset"] is True
    with pytest.raises(InvalidParams):
        await bus.call("logs.tail", {"limit": 5001}, principal=READER)


# -- status, updates, plugins, skills ------------------------------------------------------


async def test_status_lists_every_instance_and_internals_only_for_admins(bus, stack) -> None:
    mine = await bus.call("status", {}, principal=admin())
    for service, pids in stack.pids.items():
        if service in ("nats", "traefik", "caddy"):
            continue
        instances = mine["services"][service]["instances"]
        assert len(instances) == len(pids), service
        assert all(i["version"] for i in instances)
    assert mine["uptimeMs"] > 0
    assert isinstance(mine["connections"], int) and isinstance(mine["sessions"], int)
    assert mine["internals"]["config"]["hash"]
    assert mine["internals"]["streams"]["LOGS"]["messages"] > 0
    theirs = await bus.call("status", {}, principal=READER)
    assert "internals" not in theirs
    assert theirs["services"].keys() == mine["services"].keys()


async def test_update_status_has_every_instance_and_no_skew(bus, stack) -> None:
    result = await bus.call("update.status", {}, principal=READER)
    services = {i["service"] for i in result["instances"]}
    assert services >= {"auth", "ratelimit", "runtime", "ws-gateway", "http-api"}
    assert len([i for i in result["instances"] if i["service"] == "runtime"]) == 2
    assert result["skew"] is False
    assert result["available"] is None


async def test_plugins_list_is_the_entry_point_group(bus) -> None:
    result = await bus.call("plugins.list", {}, principal=READER)
    assert result["plugins"] == describe(entry_points(group=GROUP))


async def test_skills_status_reads_the_skills_folder(bus, stack) -> None:
    name = f"p2skill-{uuid.uuid4().hex[:6]}"
    folder = stack.state_dir / "skills" / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: A test skill.\nrequires:\n"
        "  bins: [sh]\n  env: [AISOPOD_P2_SURELY_UNSET]\n---\nDo things.\n"
    )
    try:
        skills = (await bus.call("skills.status", {}, principal=READER))["skills"]
        mine = next(s for s in skills if s["name"] == name)
        assert mine["eligible"] is False
        assert mine["missing"] == {"bins": [], "env": ["AISOPOD_P2_SURELY_UNSET"]}
        node = Principal(id="p2-node", role="node")
        bins = (await bus.call("skills.bins", {}, principal=node))["bins"]
        assert "sh" in bins
    finally:
        shutil.rmtree(folder)
