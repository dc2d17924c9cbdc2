"""OpenClaw's `sessions.usage` on our `usage.sessions`, as pure functions: its calendar
days → our window, our cells → its sessions, totals and aggregates (docs/openclaw.md,
Usage)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from aisopod.catalogue.usage import UsageSessionsResult
from aisopod.errors import InvalidParams
from aisopod_ws_gateway.openclaw.adapters import ADAPTERS, Context
from aisopod_ws_gateway.openclaw.usage import UNKNOWN_CREATOR, usage_params

DAY = 86_400_000
T0 = int(datetime(2026, 12, 6, tzinfo=UTC).timestamp() * 1000)  # a Sunday, 00:00 UTC


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_days_become_our_window_in_the_asked_zone() -> None:
    days = {"startDate": "2026-12-01", "endDate": "2026-12-06"}
    assert usage_params(days, T0) == {"since": ms("2026-12-01T00:00+00:00"), "until": T0 + DAY}
    vienna = usage_params({**days, "mode": "specific", "timeZone": "Europe/Vienna"}, T0)
    assert vienna == {"since": ms("2026-12-01T00:00+01:00"), "until": ms("2026-12-07T00:00+01:00")}
    # The Control UI sends both; an unknown zone falls back to the offset, as OpenClaw does.
    kolkata = {**days, "mode": "specific", "timeZone": "Nowhere/x", "utcOffset": "UTC+5:30"}
    assert usage_params(kolkata, T0)["since"] == ms("2026-12-01T00:00+05:30")


def test_presets_count_days_up_to_the_end_of_today() -> None:
    now = T0 + 10 * 3_600_000
    assert usage_params({}, now) == {"since": T0 - 29 * DAY, "until": T0 + DAY}
    assert usage_params({"range": "7d"}, now)["since"] == T0 - 6 * DAY
    assert usage_params({"range": "all"}, now)["since"] == T0 - 365 * DAY  # our longest


def test_scope_key_and_limit() -> None:
    asked = {"key": "main", "agentId": "ops", "limit": 10_000, "groupBy": "family"}
    out = usage_params({**asked, "includeContextWeight": False}, T0)
    assert {k: out[k] for k in ("key", "agentId", "limit")} == {
        "key": "main",
        "agentId": "ops",
        "limit": 1000,
    }
    assert ADAPTERS["sessions.usage"].ours == "usage.sessions"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"agentScope": "all", "key": "main"}, "agentScope=all"),
        ({"startDate": "2026-12-01"}, "together"),
        ({"startDate": "2026-12-07", "endDate": "2026-12-06"}, "after endDate"),
        ({"startDate": "2026-02-30", "endDate": "2026-03-01"}, "invalid startDate"),
        ({"mode": "specific", "timeZone": "Nowhere/x"}, "invalid timeZone"),
        ({"mode": "specific", "utcOffset": "UTC+15"}, "invalid utcOffset"),
    ],
)
def test_what_openclaw_refuses_is_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParams, match=message):
        usage_params(params, T0)


def cell(start: int, model: str = "openai/gpt-4o-mini", **over: Any) -> dict[str, Any]:
    base = {
        "start": start,
        "agentId": "main",
        "model": model,
        "provider": model.partition("/")[0],
        "runs": 1,
        "calls": 2,
        "promptTokens": 1000,
        "completionTokens": 100,
        "cacheReadTokens": 300,
        "cacheWriteTokens": 0,
        "totalTokens": 1100,
        "inputCostUsd": 0.0007,
        "outputCostUsd": 0.0001,
        "cacheReadCostUsd": 0.00015,
        "cacheWriteCostUsd": 0.0,
        "costUsd": 0.00095,
        "priced": True,
    }
    return {**base, **over}


LATE = T0 + 23 * 3_600_000 + 45 * 60_000  # 23:45 UTC: the next day in Vienna
FREE = {"inputCostUsd": 0.0, "outputCostUsd": 0.0, "cacheReadCostUsd": 0.0, "costUsd": 0.0}
CELLS = [cell(T0), cell(LATE), cell(LATE, "fake/free", priced=False, **FREE)]
OURS = UsageSessionsResult.model_validate(
    {
        "since": T0 - 29 * DAY,
        "until": T0 + DAY,
        "sessionCount": 2,  # the second one is beyond the limit: in `cells` only
        "sessions": [
            {
                "key": "agent:main:main",
                "agentId": "main",
                "firstAt": T0 + 60_000,
                "lastAt": LATE + 60_000,
                "totals": {
                    "runs": 2,
                    "calls": 4,
                    "promptTokens": 2000,
                    "completionTokens": 200,
                    "cacheReadTokens": 600,
                    "cacheWriteTokens": 0,
                    "totalTokens": 2200,
                },
                "costUsd": 0.0019,
                "cells": CELLS[:2],
            }
        ],
        "cells": CELLS,
    }
).model_dump(mode="json", by_alias=True)


def report(params: dict[str, Any]) -> dict[str, Any]:
    build = ADAPTERS["sessions.usage"].result
    assert build is not None
    out = build(OURS, Context(params=params, also={}, version="1", elapsed_ms=0))
    assert isinstance(out, dict)
    return out


def test_a_session_row_carries_its_usage_in_openclaws_shape() -> None:
    out = report({})
    assert (out["startDate"], out["endDate"]) == ("2026-11-07", "2026-12-06")
    [row] = out["sessions"]
    assert row["key"] == "agent:main:main" and row["updatedAt"] == LATE + 60_000
    assert (row["model"], row["modelProvider"]) == ("gpt-4o-mini", "openai")
    usage = row["usage"]
    # OpenClaw's `input` leaves out the cached prompt tokens; its total is ours.
    assert (usage["input"], usage["cacheRead"], usage["output"]) == (1400, 600, 200)
    assert usage["totalTokens"] == 2200
    assert usage["totalCost"] == pytest.approx(0.0019)
    assert usage["activityDates"] == ["2026-12-06"]
    assert usage["durationMs"] == LATE - T0
    assert [q["quarterIndex"] for q in usage["utcQuarterHourTokenUsage"]] == [0, 95]
    assert usage["modelUsage"][0]["count"] == 4
    assert "messageCounts" not in usage and "latency" not in usage  # not in our ledger


def test_totals_and_aggregates_count_every_cell_by_the_asked_days() -> None:
    out = report({"mode": "specific", "timeZone": "Europe/Vienna"})
    assert out["totals"]["totalTokens"] == 3300
    assert out["totals"]["missingCostEntries"] == 1
    assert out["totals"]["missingCostByModel"] == {"fake/free": 1}
    aggregates = out["aggregates"]
    assert aggregates["sessionCount"] == 2
    assert [d["date"] for d in aggregates["costDaily"]] == ["2026-12-06", "2026-12-07"]
    assert [d["tokens"] for d in aggregates["daily"]] == [1100, 2200]
    assert [(m["provider"], m["model"]) for m in aggregates["byModel"]] == [
        ("openai", "gpt-4o-mini"),
        ("fake", "free"),
    ]
    assert [p["provider"] for p in aggregates["byProvider"]] == ["openai", "fake"]
    assert aggregates["byAgent"][0]["agentId"] == "main"
    assert aggregates["byCreator"][0]["key"] == UNKNOWN_CREATOR
    assert aggregates["byCreator"][0]["sessionActivity"] == [
        {"dates": ["2026-12-06", "2026-12-07"], "sessionCount": 1}
    ]
    assert aggregates["messages"]["total"] == 0 and aggregates["byChannel"] == []


def test_another_creator_has_no_sessions() -> None:
    out = report({"creatorKey": '["profile","p1"]'})
    assert out["sessions"] == [] and out["aggregates"]["sessionCount"] == 0
    assert out["totals"]["totalTokens"] == 0
