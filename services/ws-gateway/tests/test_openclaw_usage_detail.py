"""A session's detail on OpenClaw's usage page, as pure functions: `sessions.usage.timeseries`
on our `sessions.usage.series`, `sessions.usage.logs` on our `sessions.usage.logs`, and the
session rows' `derivedTitle`/`sessionId` (docs/openclaw.md, Usage and The sessions sidebar).
Our answers are built through their catalogue models, so the adapters read what the
runtime really sends."""

from __future__ import annotations

from typing import Any

import pytest

from aisopod.catalogue import CATALOGUE
from aisopod.catalogue.sessions import SessionEntry
from aisopod.catalogue.usage import (
    SessionsUsageLogsParams,
    SessionsUsageLogsResult,
    SessionsUsageSeriesParams,
    SessionsUsageSeriesResult,
)
from aisopod.errors import InvalidParams, NotFound
from aisopod_ws_gateway.openclaw.adapters import (
    ADAPTERS,
    Context,
    implemented_methods,
    sessions_list,
)
from aisopod_ws_gateway.openclaw.usagedetail import LOG_TEXT_MAX, session_id

KEY = "agent:main:side"
T0 = 1_764_979_200_000
DAY = 86_400_000


def build(method: str, ours: dict[str, Any], params: dict[str, Any] | None = None) -> Any:
    result = ADAPTERS[method].result
    assert result is not None
    return result(ours, Context(params=params or {}, also={}, version="1", elapsed_ms=0))


def point(ts: int, **over: Any) -> dict[str, Any]:
    base = {
        "ts": ts,
        "runs": 1,
        "calls": 2,
        "promptTokens": 1000,
        "completionTokens": 100,
        "cacheReadTokens": 300,
        "cacheWriteTokens": 50,
        "totalTokens": 1100,
        "costUsd": 0.001,
        "priced": True,
    }
    return {**base, **over}


def series(*points: dict[str, Any]) -> dict[str, Any]:
    return SessionsUsageSeriesResult.model_validate(
        {
            "key": KEY,
            "agentId": "main",
            "since": T0 - 366 * DAY,
            "until": T0,
            "runs": sum(p["runs"] for p in points),
            "points": list(points),
        }
    ).model_dump(mode="json", by_alias=True)


def test_timeseries_params_ask_our_longest_window_and_openclaws_point_cap() -> None:
    mapped = ADAPTERS["sessions.usage.timeseries"].params
    assert mapped is not None and ADAPTERS["sessions.usage.timeseries"].ours == (
        "sessions.usage.series"
    )
    out = mapped({"key": "side", "agentId": "ops"})
    assert out["key"] == "agent:ops:side"
    assert out["until"] - out["since"] == 366 * DAY and out["maxPoints"] == 200
    SessionsUsageSeriesParams.model_validate(out)  # ours accepts it
    assert mapped({"key": KEY})["key"] == KEY
    assert mapped({"key": " main "})["key"] == "main"  # the runtime's default agent's
    with pytest.raises(InvalidParams, match="key is required for timeseries"):
        mapped({})


def test_timeseries_points_in_openclaws_shape_with_running_sums() -> None:
    out = build("sessions.usage.timeseries", series(point(T0 - 60_000), point(T0, costUsd=0.5)))
    assert out["sessionId"] == session_id(KEY)
    first, second = out["points"]
    assert first == {
        "timestamp": T0 - 60_000,
        "input": 650,  # the prompt no cache touched
        "output": 100,
        "cacheRead": 300,
        "cacheWrite": 50,
        "totalTokens": 1100,
        "cost": 0.001,
        "cumulativeTokens": 1100,
        "cumulativeCost": 0.001,
    }
    assert (second["cumulativeTokens"], second["cumulativeCost"]) == (2200, 0.501)
    assert build("sessions.usage.timeseries", series())["points"] == []


def message(mid: str, role: str, content: Any, ts: int, **over: Any) -> dict[str, Any]:
    return {"id": mid, "role": role, "content": content, "ts": ts, **over}


def logs(messages: list[dict[str, Any]], runs: list[dict[str, Any]]) -> dict[str, Any]:
    return SessionsUsageLogsResult.model_validate(
        {"key": KEY, "agentId": "main", "messages": messages, "runs": runs}
    ).model_dump(mode="json", by_alias=True)


def test_logs_params_limit_as_openclaw() -> None:
    mapped = ADAPTERS["sessions.usage.logs"].params
    assert mapped is not None
    assert mapped({"key": KEY, "limit": 1000}) == {"key": KEY, "limit": 1000}
    assert mapped({"key": KEY, "limit": 5000})["limit"] == 1000
    assert mapped({"key": KEY})["limit"] == 200  # OpenClaw's default
    assert mapped({"key": KEY, "limit": "x"})["limit"] == 200
    SessionsUsageLogsParams.model_validate(mapped({"key": KEY, "limit": 0}))
    with pytest.raises(InvalidParams, match="key is required for logs"):
        mapped({"key": " "})
    # An unknown session is an empty log, as OpenClaw answers without a transcript.
    assert NotFound in ADAPTERS["sessions.usage.logs"].empty_on
    assert ADAPTERS["sessions.usage.logs"].empty == {"logs": []}


def test_logs_entries_with_each_runs_cost_on_its_last_answer() -> None:
    r1, r2 = "run-1", "run-2"
    messages = [
        message("s", "system", "Summary of earlier turns", T0, compaction=None),
        message("u1", "user", "what is in /tmp?", T0 + 1, runId=r1),
        message(
            "a1", "assistant", "", T0 + 2, runId=r1,
            toolCalls=[{"id": "c1", "name": "exec", "args": {"cmd": "ls /tmp"}}],
        ),
        message("t1", "tool", "a.txt", T0 + 3, runId=r1, toolCallId="c1", toolName="exec"),
        message("a2", "assistant", "One file: a.txt", T0 + 4, runId=r1, model="fake/echo"),
        message("u2", "user", [{"type": "text", "text": "and"}, {"type": "image"}], T0 + 5,
                runId=r2),
        message("a3", "assistant", "x" * (LOG_TEXT_MAX + 10), T0 + 6, runId=r2),
        message("a4", "assistant", "note", T0 + 7, injected=True),
    ]  # fmt: skip
    runs = [
        {"runId": r1, "model": "fake/echo", "totalTokens": 900, "costUsd": 0.002, "priced": True},
        {"runId": r2, "model": "fake/free", "totalTokens": 40, "costUsd": 0.0, "priced": False},
    ]
    out = build("sessions.usage.logs", logs(messages, runs))["logs"]
    assert [(e["role"], e["content"][:20]) for e in out] == [
        ("user", "what is in /tmp?"),
        ("assistant", "[Tool: exec]"),
        ("tool", "[Tool: exec]\n[Tool R"),
        ("assistant", "One file: a.txt"),
        ("user", "and"),
        ("assistant", "x" * 20),
        ("assistant", "note"),
    ]
    assert out[2]["content"] == "[Tool: exec]\n[Tool Result]\na.txt"
    # The run's tokens and cost go with its last answer only; no cost without a price.
    assert [(e.get("tokens"), e.get("cost")) for e in out] == [
        (None, None),
        (None, None),
        (None, None),
        (900, 0.002),
        (None, None),
        (40, None),
        (None, None),
    ]
    assert out[5]["content"] == "x" * LOG_TEXT_MAX + "…"
    assert [e["timestamp"] for e in out] == sorted(e["timestamp"] for e in out)


def entry(**over: Any) -> dict[str, Any]:
    base = {"key": KEY, "agentId": "main", "updatedAt": T0}
    return SessionEntry.model_validate({**base, **over}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


def test_rows_carry_a_derived_title_when_asked_and_a_stable_session_id() -> None:
    ours = {
        "sessions": [
            entry(title="Fix the login page"),
            entry(key="agent:main:named", label="Inbox", title="Hello"),
            entry(key="agent:main:old"),  # from before titles
        ]
    }
    asked = {"includeDerivedTitles": True}
    rows = sessions_list(ours, Context(params=asked, also={}, version="1", elapsed_ms=0))
    titled, named, old = rows["sessions"]
    assert titled["derivedTitle"] == "Fix the login page"
    assert named["derivedTitle"] == "Inbox"  # a label comes first, as in OpenClaw
    assert "derivedTitle" not in old
    assert titled["sessionId"] == session_id(KEY) != named["sessionId"]
    plain = sessions_list(ours, Context(params={}, also={}, version="1", elapsed_ms=0))
    assert all("derivedTitle" not in row for row in plain["sessions"])
    assert session_id(KEY) == session_id(KEY)  # the same at every gateway


def test_the_detail_needs_what_sessions_usage_needs() -> None:
    """Each row calls one method of ours through our dispatch: its scope is checked there,
    and it is the one of `sessions.usage`'s (operator.read); advertised when allowed."""
    detail = ("sessions.usage.timeseries", "sessions.usage.logs")
    needed = CATALOGUE[ADAPTERS["sessions.usage"].ours].requirement
    for method in detail:
        (ours,) = ADAPTERS[method].uses()
        assert CATALOGUE[ours].requirement == needed
    assert set(detail) <= set(implemented_methods(["sessions.usage.series", "sessions.usage.logs"]))
    assert not set(detail) & set(implemented_methods(["usage.sessions"]))
