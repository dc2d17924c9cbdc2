"""OpenClaw's `sessions.usage` (the Control UI's usage page) through `/openclaw` with the
real OpenClaw CLI: after a turn run through OpenClaw's own `agent`, the session's row, the
totals and the aggregates carry the tokens the fake upstream reported for it, and so do its
detail (`sessions.usage.timeseries`, `sessions.usage.logs`); its sidebar row has the title
of its first message (docs/openclaw.md, Usage)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    fake_session,
    rt_fixture,
)
from tests.support.openclaw import installed, json_out, openclaw

pytestmark = pytest.mark.integration

if not installed():
    pytest.skip(
        "the OpenClaw CLI is not installed: scripts/bootstrap.sh --openclaw",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openclaw-usage-home")


async def call(stack: Any, home: Path, method: str, params: dict[str, Any], *extra: str) -> Any:
    args = ("gateway", "call", method, "--params", json.dumps(params), "--json", *extra)
    return await asyncio.to_thread(openclaw, stack, home, *args)


def upstream_tokens(fake_url: str, needle: str) -> dict[str, int]:
    """What the fake upstream reported for the requests mentioning `needle`."""
    root = fake_url.removesuffix("/v1")
    data = httpx.get(f"{root}/_requests", timeout=5, trust_env=False).json()["data"]
    usages = [r["usage"] for r in data if needle in json.dumps(r.get("body", {}))]
    assert usages, f"the fake upstream saw no request with {needle!r}"
    prompt = sum(u["prompt_tokens"] for u in usages)
    cached = sum(
        int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0) for u in usages
    )
    completion = sum(u["completion_tokens"] for u in usages)
    return {"input": prompt - cached, "cacheRead": cached, "output": completion,
            "totalTokens": prompt + completion}  # fmt: skip


def tokens(usage: dict[str, Any]) -> dict[str, int]:
    return {k: usage[k] for k in ("input", "cacheRead", "output", "totalTokens")}


async def test_a_turn_shows_on_the_usage_page(stack, home: Path, rt: RuntimeClient) -> None:
    key = await fake_session(rt, "oc-usage")
    marker = f"usage-{uuid.uuid4().hex[:10]}"
    turn = {"message": f"count me {marker}", "agentId": "fake-small", "sessionKey": key,
            "idempotencyKey": marker}  # fmt: skip
    final = await call(stack, home, "agent", turn, "--expect-final")
    assert final.returncode == 0, final.stderr
    assert json_out(final)["status"] == "ok"
    reported = upstream_tokens(stack.fake_url, marker)
    today = datetime.now(UTC).date()
    days = {"startDate": str(today - timedelta(days=1)), "endDate": str(today + timedelta(days=1))}

    # One session, as the page's detail view asks for it.
    one = await call(stack, home, "sessions.usage", {**days, "key": key, "limit": 1})
    assert one.returncode == 0, one.stderr
    detail = json_out(one)
    [row] = detail["sessions"]
    assert row["key"] == key and row["agentId"] == "fake-small"
    assert tokens(row["usage"]) == reported
    assert (
        row["usage"]["modelUsage"][0] | {"provider": "fake", "model": "fake-small"}
        == (row["usage"]["modelUsage"][0])
    )
    assert tokens(detail["totals"]) == reported
    assert detail["aggregates"]["sessionCount"] == 1

    # The list, as the page loads it: every agent, a zone of the browser, up to 1000 rows.
    listing = {**days, "agentScope": "all", "mode": "specific", "timeZone": "Asia/Kolkata",
               "utcOffset": "UTC+5:30", "groupBy": "family", "limit": 1000,
               "includeContextWeight": False}  # fmt: skip
    every = await call(stack, home, "sessions.usage", listing)
    assert every.returncode == 0, every.stderr
    page = json_out(every)
    mine = next(s for s in page["sessions"] if s["key"] == key)
    assert tokens(mine["usage"]) == reported
    assert page["totals"]["totalTokens"] >= reported["totalTokens"]
    assert page["aggregates"]["sessionCount"] >= 1
    assert sum(d["tokens"] for d in page["aggregates"]["daily"]) == page["totals"]["totalTokens"]
    agents = {a["agentId"] for a in page["aggregates"]["byAgent"]}
    assert "fake-small" in agents

    # The session's detail: its chart points and its message log, as the page asks them.
    charted = await call(stack, home, "sessions.usage.timeseries", {"key": key})
    assert charted.returncode == 0, charted.stderr
    series = json_out(charted)
    [point] = series["points"]  # one run
    assert tokens(point) == reported
    assert point["cumulativeTokens"] == reported["totalTokens"]
    logged = await call(stack, home, "sessions.usage.logs", {"key": key, "limit": 1000})
    assert logged.returncode == 0, logged.stderr
    asked, answered = json_out(logged)["logs"]
    assert (asked["role"], asked["content"]) == ("user", f"count me {marker}")
    assert answered["role"] == "assistant" and answered["tokens"] == reported["totalTokens"]
    assert asked["timestamp"] <= answered["timestamp"]

    # Its row in the sidebar carries the title of its first message, and the same id.
    listed = await call(
        stack, home, "sessions.list",
        {"agentId": "fake-small", "limit": 200, "includeDerivedTitles": True},
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    row = next(s for s in json_out(listed)["sessions"] if s["key"] == key)
    assert row["derivedTitle"] == f"Count me {marker}"
    assert row["sessionId"] == series["sessionId"]


async def test_a_sessions_detail_without_a_session(stack, home: Path) -> None:
    unknown = {"key": f"agent:fake-small:none-{uuid.uuid4().hex[:8]}"}
    logged = await call(stack, home, "sessions.usage.logs", unknown)
    assert logged.returncode == 0, logged.stderr
    assert json_out(logged) == {"logs": []}  # OpenClaw's answer without a transcript
    charted = await call(stack, home, "sessions.usage.timeseries", unknown)
    assert charted.returncode != 0
    assert "no session" in charted.stdout + charted.stderr
    keyless = await call(stack, home, "sessions.usage.timeseries", {})
    assert keyless.returncode != 0
    assert "key is required for timeseries" in keyless.stdout + keyless.stderr


async def test_what_openclaw_refuses_is_refused(stack, home: Path) -> None:
    both = await call(stack, home, "sessions.usage", {"agentScope": "all", "key": "main"})
    assert both.returncode != 0
    assert "agentScope=all" in both.stdout + both.stderr
    bad = await call(
        stack, home, "sessions.usage", {"startDate": "2026-02-30", "endDate": "2026-03-01"}
    )
    assert bad.returncode != 0
    assert "invalid startDate" in bad.stdout + bad.stderr
