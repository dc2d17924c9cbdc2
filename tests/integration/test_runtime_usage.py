"""Usage, cost and budgets on the shared stack (two runtime replicas), against what the
fake upstream itself reported for every request it answered.

Each test uses an agent of its own (its id is in every message, so the fake's recorded
requests can be picked out), and restores the configuration it changed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from aisopod.errors import Forbidden, InvalidParams, NotFound
from aisopod.principal import Principal
from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    new_session,
    rt_fixture,
)

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
KINDS = {"prompt": "promptTokens", "completion": "completionTokens"}


def admin() -> Principal:
    """A fresh admin for each config write (the control-write limit is per principal)."""
    return Principal(id=f"usage-{uuid.uuid4().hex[:10]}", scopes=("operator.admin",))


def reported(fake_url: str, needle: str) -> list[dict[str, Any]]:
    """The usage the fake upstream reported for each request mentioning `needle`."""
    root = fake_url.removesuffix("/v1")
    data = httpx.get(f"{root}/_requests", timeout=5, trust_env=False).json()["data"]
    return [r["usage"] for r in data if needle in json.dumps(r.get("body", {}))]


def added(usages: list[dict[str, Any]]) -> dict[str, int]:
    def cached(u: dict[str, Any], field: str) -> int:
        return int((u.get("prompt_tokens_details") or {}).get(field) or 0)

    return {
        "calls": len(usages),
        "promptTokens": sum(u["prompt_tokens"] for u in usages),
        "completionTokens": sum(u["completion_tokens"] for u in usages),
        "cacheReadTokens": sum(cached(u, "cached_tokens") for u in usages),
        "cacheWriteTokens": sum(cached(u, "cache_write_tokens") for u in usages),
        "totalTokens": sum(u["prompt_tokens"] + u["completion_tokens"] for u in usages),
    }


def runtime_metrics(stack: Any) -> list[str]:
    """Each runtime replica's own /metrics text (internal: not routed by Traefik)."""
    bodies = []
    for pid in stack.pids.get("runtime", []):
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        port = next(v.split(b"=", 1)[1] for v in env if v.startswith(b"AISOPOD_PORT="))
        bodies.append(httpx.get(f"http://127.0.0.1:{int(port)}/metrics", timeout=5).text)
    return bodies


def counted(bodies: list[str], agent: str, kind: str) -> int:
    pattern = re.compile(
        rf'^aisopod_usage_tokens_total\{{[^}}]*agent="{agent}"[^}}]*kind="{kind}"[^}}]*\}} (\S+)$',
        re.M,
    )
    return int(sum(float(m.group(1)) for body in bodies for m in pattern.finditer(body)))


async def new_agent(rt: RuntimeClient, prefix: str, model: str = "fake/fake-small") -> str:
    agent_id = f"{prefix}{uuid.uuid4().hex[:8]}"
    await rt.call("agents.create", {"id": agent_id, "name": agent_id, "model": model})
    return agent_id


async def run(rt: RuntimeClient, key: str, message: str, as_: Principal | None = None) -> str:
    principal = as_ or Principal(id="tester", scopes=("operator.admin",))
    started = await rt.call("chat.send", {"sessionKey": key, "message": message}, as_=principal)
    done = await rt.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
    assert done["status"] == "ok", done
    return str(started["runId"])


async def patch_config(rt: RuntimeClient, patch: dict[str, Any]) -> None:
    current = await rt.call("config.get", {}, as_=admin())
    await rt.call(
        "config.apply", {"patch": patch, "baseHash": current["hash"]}, as_=admin(), timeout=30
    )


@pytest.fixture
async def restore(rt: RuntimeClient) -> AsyncIterator[None]:
    before = await rt.call("config.get", {}, as_=admin())
    yield
    current = await rt.call("config.get", {}, as_=admin())
    if current["hash"] != before["hash"]:
        params = {"config": before["config"], "baseHash": current["hash"]}
        restored = await rt.call("config.apply", params, as_=admin(), timeout=30)
        assert restored["hash"] == before["hash"], "the shared stack's config was not restored"


TOKEN_FIELDS = (
    "calls",
    "promptTokens",
    "completionTokens",
    "cacheReadTokens",
    "cacheWriteTokens",
    "totalTokens",
)


def tokens_of(entry: dict[str, Any]) -> dict[str, int]:
    return {k: entry[k] for k in TOKEN_FIELDS}


async def test_totals_match_what_the_upstream_reported_across_both_replicas(
    rt: RuntimeClient, stack, restore
) -> None:
    agent = await new_agent(rt, "tally")
    # A budget far from its limit: its counter must add up to the same totals.
    await patch_config(
        rt, {"usage": {"budgets": {"agents": {agent: {"monthlyTokens": 10_000_000}}}}}
    )
    since = int(time.time() * 1000) - 1
    sessions = [f"agent:{agent}:s{i}" for i in range(6)]
    messages = [
        f"{agent} plain turn",
        f"{agent} cached [[fake:cached_tokens=3 cache_write_tokens=2]]",
        f"{agent} what time is it [[tool:current_time {{}}]]",  # two model calls
    ]
    run_ids: list[str] = []
    for round_ in range(4):  # rounds: later turns of a session send longer histories
        run_ids += await asyncio.gather(
            *(
                run(rt, key, f"{messages[(i + round_) % 3]} {agent}-s{i}- r{round_}")
                for i, key in enumerate(sessions)
            )
        )
    upstream = added(reported(stack.fake_url, agent))
    assert upstream["calls"] > len(run_ids)  # the tool turns made two calls each

    # The runs were spread over both runtime replicas.
    runs_kv = await rt.bus.js.key_value("runs")
    instances = {json.loads((await runs_kv.get(f"run.{rid}")).value)["instance"] for rid in run_ids}
    assert len(instances) == 2, instances

    status = await rt.call("usage.status", {"since": since, "agentId": agent})
    totals = status["totals"]
    assert totals["runs"] == len(run_ids)
    assert tokens_of(totals) == upstream
    assert [a["agentId"] for a in status["byAgent"]] == [agent]
    assert [m["model"] for m in status["byModel"]] == ["fake/fake-small"]
    assert status["byProvider"][0]["provider"] == "fake"
    assert status["bucket"] == "hour"
    assert sum(p["totalTokens"] for p in status["series"]) == upstream["totalTokens"]
    # The monthly counter (compare-and-set by both replicas at once) lost nothing.
    budget = next(b for b in status["budgets"] if b["id"] == agent)
    assert budget["spentTokens"] == upstream["totalTokens"] and not budget["exhausted"]

    # The whole window holds these runs too, beside everyone else's.
    everyone = await rt.call("usage.status", {})
    mine = next(a for a in everyone["byAgent"] if a["agentId"] == agent)
    assert tokens_of(mine) == upstream
    assert everyone["bucket"] == "day" and len(everyone["series"]) in (30, 31)

    # One session: what the fake reported for the requests of that session alone (each
    # carries the session's history, so its marker).
    for i, key in enumerate(sessions[:3]):
        session = await rt.call("sessions.usage", {"key": key})
        assert session["agentId"] == agent and session["key"] == key
        alone = added(reported(stack.fake_url, f"{agent}-s{i}-"))
        assert tokens_of(session["totals"]) == alone
        assert session["totals"]["runs"] == 4

    # Prometheus: the two replicas' counters add up to the same totals.
    bodies = runtime_metrics(stack)
    for kind, field in KINDS.items():
        assert counted(bodies, agent, kind) == upstream[field]
    assert counted(bodies, agent, "cache_read") == upstream["cacheReadTokens"]

    # http-api's /status: the runtime's status, with the last 30 days' usage in it.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        answer = await http.get(
            f"{stack.http_url}/status", headers={"Authorization": f"Bearer {stack.admin_token}"}
        )
    assert answer.status_code == 200
    by_agent = {a["agentId"]: a for a in answer.json()["usage"]["byAgent"]}
    assert tokens_of(by_agent[agent]) == upstream


async def test_cost_at_the_configured_prices(rt: RuntimeClient, stack, restore) -> None:
    agent = await new_agent(rt, "cost", model="fake/fake-large")
    since = int(time.time() * 1000) - 1
    for i in range(3):
        await run(rt, f"agent:{agent}:c{i}", f"{agent} price me [[fake:cached_tokens=2]]")
    upstream = added(reported(stack.fake_url, agent))

    unpriced = await rt.call("usage.cost", {"since": since, "agentId": agent})
    assert unpriced["totalUsd"] == 0 and unpriced["unpriced"] == ["fake/fake-large"]
    assert unpriced["byModel"][0]["priced"] is False

    # A price set now applies to the past (reports use the current price list).
    current = await rt.call("config.get", {}, as_=admin())
    providers = current["config"]["models"]["providers"]
    fake = next(p for p in providers if p["id"] == "fake")
    large = next(m for m in fake["models"] if m["id"] == "fake-large")
    # Only fake-large changes: the fake's other models (fake-tiny's small context window)
    # stay as the seed has them.
    large["cost"] = {"input": 2, "output": 10, "cacheRead": 0.5}
    await patch_config(rt, {"models": {"providers": providers}})
    cost = await rt.call("usage.cost", {"since": since, "agentId": agent, "bucket": "hour"})
    fresh = upstream["promptTokens"] - upstream["cacheReadTokens"]
    expected = (
        fresh * 2 + upstream["cacheReadTokens"] * 0.5 + upstream["completionTokens"] * 10
    ) / 1e6
    assert cost["totalUsd"] == pytest.approx(expected, abs=1e-9)
    assert cost["unpriced"] == [] and cost["byModel"][0]["priced"] is True
    assert cost["byAgent"] == [{"agentId": agent, "costUsd": cost["totalUsd"]}]
    assert sum(p["costUsd"] for p in cost["series"]) == pytest.approx(expected, abs=1e-9)
    session = await rt.call("sessions.usage", {"key": f"agent:{agent}:c0"})
    assert 0 < session["costUsd"] < cost["totalUsd"]


async def test_a_spent_agent_budget_refuses_new_runs_on_every_replica(
    rt: RuntimeClient, stack, restore
) -> None:
    agent = await new_agent(rt, "budget")
    limit = 40
    await patch_config(rt, {"usage": {"budgets": {"agents": {agent: {"monthlyTokens": limit}}}}})
    spent = 0
    runs = 0
    while spent < limit:
        await run(rt, f"agent:{agent}:b{runs}", f"{agent} spend some tokens")
        runs += 1
        spent = added(reported(stack.fake_url, agent))["totalTokens"]
        assert runs < 20
    assert runs > 1  # the budget allowed runs until it was spent

    # Refused on whichever replica takes the call (queue group: several tries reach both).
    for attempt in range(8):
        with pytest.raises(Forbidden) as refused:
            await rt.call(
                "chat.send", {"sessionKey": f"agent:{agent}:more{attempt}", "message": "more"}
            )
        data = refused.value.data
        assert data["code"] == "BUDGET_EXHAUSTED"
        assert (data["scope"], data["id"], data["limitTokens"]) == ("agent", agent, limit)
        assert data["spentTokens"] == spent and data["exhausted"] is True
        assert "monthly budget of agent" in refused.value.message
    for method, params in (
        ("agent", {"agentId": agent, "message": "more"}),
        ("sessions.send", {"sessionKey": f"agent:{agent}:x", "message": "more"}),
    ):
        with pytest.raises(Forbidden):
            await rt.call(method, params)
    # Over /v1 (the official SDK) the refusal is a 403 the SDK names, with its code.
    sdk = openai.AsyncOpenAI(
        base_url=stack.http_url + "/v1", api_key=stack.admin_token, max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError) as denied:
        await sdk.chat.completions.create(
            model=f"aisopod/{agent}", messages=[{"role": "user", "content": "more"}]
        )
    await sdk.close()
    assert denied.value.code == "budget_exhausted"
    assert "monthly budget" in denied.value.message
    # A refused run left nothing behind: no session was created.
    with pytest.raises(NotFound):
        await rt.call("sessions.usage", {"key": f"agent:{agent}:more0"})

    status = await rt.call("usage.status", {"agentId": agent})
    budget = next(b for b in status["budgets"] if b["id"] == agent)
    assert budget["exhausted"] and budget["spentTokens"] == spent
    refusals = sum(
        float(m.group(1))
        for body in runtime_metrics(stack)
        for m in re.finditer(
            r'^aisopod_usage_budget_refusals_total\{scope="agent"\} (\S+)$', body, re.M
        )
    )
    assert refusals >= 11

    # Raising the limit lets runs through again.
    await patch_config(
        rt, {"usage": {"budgets": {"agents": {agent: {"monthlyTokens": limit * 100}}}}}
    )
    await run(rt, f"agent:{agent}:after", f"{agent} again")


async def test_a_token_budget_and_runs_in_flight_at_the_limit(
    rt: RuntimeClient, stack, restore
) -> None:
    agent = await new_agent(rt, "tokbud")
    token = f"tok_{uuid.uuid4().hex[:16]}"
    holder = Principal(id=f"token:{token}", scopes=("operator.admin",), auth_method="token")
    await patch_config(rt, {"usage": {"budgets": {"tokens": {token: {"monthlyTokens": 1}}}}})
    # Two runs admitted before either ended both finish: a run in flight is never cut.
    slow = f"{agent} slow [[fake:delay_ms=600]]"
    first = await rt.call(
        "chat.send", {"sessionKey": f"agent:{agent}:t1", "message": slow}, as_=holder
    )
    second = await rt.call(
        "chat.send", {"sessionKey": f"agent:{agent}:t2", "message": slow}, as_=holder
    )
    for started in (first, second):
        done = await rt.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        assert done["status"] == "ok"
    with pytest.raises(Forbidden) as refused:
        await rt.call(
            "chat.send", {"sessionKey": f"agent:{agent}:t3", "message": "more"}, as_=holder
        )
    assert (refused.value.data["scope"], refused.value.data["id"]) == ("token", token)
    upstream = added(reported(stack.fake_url, agent))
    assert refused.value.data["spentTokens"] == upstream["totalTokens"]
    # Another principal on the same agent is not held by this token's budget.
    await run(rt, f"agent:{agent}:t4", f"{agent} someone else")


async def test_bad_params_and_unknown_sessions(rt: RuntimeClient) -> None:
    now = int(time.time() * 1000)
    for params in (
        {"since": now, "until": now},
        {"since": now - 400 * DAY_MS, "until": now},
        {"since": now - 40 * DAY_MS, "bucket": "hour"},
        {"bucket": "week"},
        {"agentId": "not an id"},
        {"until": -1},
        {"extra": 1},
    ):
        for method in ("usage.status", "usage.cost"):
            with pytest.raises(InvalidParams):
                await rt.call(method, params)
    with pytest.raises(InvalidParams):
        await rt.call("usage.status", {"until": now - 400 * DAY_MS - 1, "since": 0})
    for params in ({}, {"key": "bad key"}, {"key": new_session(), "since": 5, "until": 1}):
        with pytest.raises(InvalidParams):
            await rt.call("sessions.usage", params)
    with pytest.raises(NotFound) as missing:
        await rt.call("sessions.usage", {"key": new_session("never")})
    assert missing.value.data["code"] == "SESSION_NOT_FOUND"
    # A session with no usage in the window (an echo reply counts; none before it).
    key = new_session("quiet")
    await rt.call("sessions.send", {"sessionKey": key, "message": "hi", "wait": True})
    empty = await rt.call("sessions.usage", {"key": key, "since": 0, "until": 1000})
    assert empty["totals"]["runs"] == 0 and empty["costUsd"] == 0
    echoed = await rt.call("sessions.usage", {"key": key})
    assert echoed["totals"]["runs"] == 1 and echoed["byModel"][0]["model"] == "echo/echo"
    # Per session over a window: bad params, then that session alone and among the others.
    for params in (
        {"since": now, "until": now},
        {"since": now - 400 * DAY_MS, "until": now},
        {"limit": 0},
        {"limit": 1001},
        {"key": "bad key"},
        {"bucket": "day"},
    ):
        with pytest.raises(InvalidParams):
            await rt.call("usage.sessions", params)
    alone = await rt.call("usage.sessions", {"key": key})
    [row] = alone["sessions"]
    assert row["key"] == key and row["totals"] == echoed["totals"]
    assert sum(c["totalTokens"] for c in alone["cells"]) == echoed["totals"]["totalTokens"]
    other_agent = await rt.call("usage.sessions", {"key": key, "agentId": "nobody"})
    assert other_agent["sessions"] == [] and other_agent["sessionCount"] == 0
    listed = await rt.call("usage.sessions", {"limit": 1})
    assert len(listed["sessions"]) == 1 and listed["sessionCount"] >= 1
    assert sum(c["totalTokens"] for c in listed["cells"]) >= echoed["totals"]["totalTokens"]


async def test_a_compaction_summary_is_counted_too(rt: RuntimeClient, stack) -> None:
    agent = await new_agent(rt, "compact")
    key = f"agent:{agent}:c"
    for word in ("one", "two", "three"):
        await run(rt, key, f"{agent} turn {word} detail")
    done = await rt.call("sessions.compact", {"key": key, "keepTurns": 1})
    assert done["compacted"] is True
    upstream = added(reported(stack.fake_url, agent))  # three turns and the summary call
    assert upstream["calls"] == 4
    status = await rt.call("usage.status", {"agentId": agent})
    assert status["totals"]["runs"] == 4  # the summary counts as one more
    assert tokens_of(status["totals"]) == upstream
    session = await rt.call("sessions.usage", {"key": key})
    assert tokens_of(session["totals"]) == upstream


async def test_one_sessions_runs_and_logs_with_their_costs(rt: RuntimeClient, stack) -> None:
    agent = await new_agent(rt, "detail")
    key = f"agent:{agent}:d"
    run_ids = [await run(rt, key, f"{agent} detail turn {word}") for word in ("a", "b", "c")]
    upstream = added(reported(stack.fake_url, agent))
    series = await rt.call("sessions.usage.series", {"key": key})
    assert (series["key"], series["agentId"], series["runs"]) == (key, agent, 3)
    points = series["points"]
    assert len(points) == 3 and [p["runs"] for p in points] == [1, 1, 1]
    assert [p["ts"] for p in points] == sorted(p["ts"] for p in points)
    assert sum(p["totalTokens"] for p in points) == upstream["totalTokens"]
    assert sum(p["calls"] for p in points) == upstream["calls"]
    # Past the cap, consecutive runs are added up: the same totals in fewer points.
    merged = await rt.call("sessions.usage.series", {"key": key, "maxPoints": 2})
    assert [p["runs"] for p in merged["points"]] == [2, 1]
    assert merged["points"][-1]["ts"] == points[-1]["ts"]
    assert sum(p["totalTokens"] for p in merged["points"]) == upstream["totalTokens"]

    logs = await rt.call("sessions.usage.logs", {"key": key})
    assert [m["role"] for m in logs["messages"]] == ["user", "assistant"] * 3
    assert [r["runId"] for r in logs["runs"]] == run_ids
    assert sum(r["totalTokens"] for r in logs["runs"]) == upstream["totalTokens"]
    assert all(r["model"] == "fake/fake-small" for r in logs["runs"])
    # The newest messages only, and only their runs' costs.
    last = await rt.call("sessions.usage.logs", {"key": key, "limit": 2})
    assert [m["runId"] for m in last["messages"]] == [run_ids[-1]] * 2
    assert [r["runId"] for r in last["runs"]] == [run_ids[-1]]

    for method in ("sessions.usage.series", "sessions.usage.logs"):
        with pytest.raises(NotFound) as missing:
            await rt.call(method, {"key": f"agent:{agent}:never"})
        assert missing.value.data["code"] == "SESSION_NOT_FOUND"
        with pytest.raises(InvalidParams):
            await rt.call(method, {"key": "bad key"})


async def test_a_session_keeps_the_title_of_its_first_user_message(rt: RuntimeClient) -> None:
    agent = await new_agent(rt, "title")
    key = f"agent:{agent}:t"
    await run(rt, key, "Hi. Fix the   flaky login test, please.")
    await run(rt, key, "write something else")
    entry = (await rt.call("sessions.resolve", {"key": key}))["entry"]
    assert entry["title"] == "Fix the flaky login test, please."
    listed = await rt.call("sessions.list", {"agentId": agent})
    assert [s.get("title") for s in listed["sessions"]] == [entry["title"]]
    # A session an injected note created: its first run carries its first user message.
    noted = f"agent:{agent}:noted"
    await rt.call("chat.inject", {"sessionKey": noted, "message": "a note"}, as_=admin())
    assert "title" not in (await rt.call("sessions.resolve", {"key": noted}))["entry"]
    await run(rt, noted, "summarize the note")
    await run(rt, noted, "and again")
    assert (await rt.call("sessions.resolve", {"key": noted}))["entry"]["title"] == (
        "Summarize the note"
    )
    # A command gives no title.
    command = f"agent:{agent}:cmd"
    await run(rt, command, "/status")
    assert "title" not in (await rt.call("sessions.resolve", {"key": command}))["entry"]
