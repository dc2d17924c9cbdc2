"""OpenClaw's `sessions.usage` (the Control UI's usage page) on our `usage.sessions`.

OpenClaw asks for calendar days (`startDate`/`endDate`, or a preset `range`, in UTC, the
gateway's zone or a given one) and answers every session's usage with totals and
aggregates (per day, model, provider, agent, …). We map the days to a `[since, until)`
window, read `usage.sessions` (quarter-hour cells per session, agent and model) and add
the cells up in the asked zone. What our ledger does not hold (message and tool counts,
latencies, channels, creators) is left out or empty, as OpenClaw answers without data
(docs/openclaw.md, "Usage"). Pure functions only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aisopod.errors import InvalidParams

Params = dict[str, Any]
DAY_MS = 86_400_000
MAX_DAYS = 366
"""Our longest window (`usage.sessions`): `range: "all"` becomes the last 366 days."""
ROWS_MAX = 1000
UNKNOWN_CREATOR = '["unknown"]'
"""OpenClaw's creator key for sessions whose creator it does not know: all of ours."""
RANGE_DAYS = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"^UTC([+-])(\d{1,2})(?::([0-5]\d))?$")


def _zone(p: Params) -> tzinfo:
    """The zone of the asked days: OpenClaw's `mode` (`utc`, `gateway` — ours run in UTC
    — or `specific` with an IANA `timeZone`, else a `utcOffset`)."""
    if p.get("mode") != "specific":
        return UTC
    offset = _offset(p.get("utcOffset"))
    name = p.get("timeZone")
    if name is not None:
        try:
            return ZoneInfo(str(name).strip())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            if offset is not None:
                return offset
            raise InvalidParams(
                "invalid timeZone: expected a valid IANA time zone", code="BAD_WINDOW"
            ) from exc
    if offset is not None:
        return offset
    if isinstance(p.get("utcOffset"), str) and p["utcOffset"].strip():
        raise InvalidParams(
            "invalid utcOffset: expected UTC-12:00 through UTC+14:00", code="BAD_WINDOW"
        )
    return UTC


def _offset(raw: Any) -> tzinfo | None:
    match = _OFFSET.match(raw.strip()) if isinstance(raw, str) else None
    if match is None:
        return None
    minutes = int(match[2]) * 60 + int(match[3] or 0)
    minutes = -minutes if match[1] == "-" else minutes
    if not -720 <= minutes <= 840:
        return None
    return timezone(timedelta(minutes=minutes))


def _day(raw: Any, name: str) -> date | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        if not isinstance(raw, str) or not _DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidParams(
            f"invalid {name}: expected a valid YYYY-MM-DD calendar date", code="BAD_WINDOW"
        ) from exc


def _start_ms(day: date, zone: tzinfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def usage_window(p: Params, now_ms: int) -> tuple[int, int]:
    """OpenClaw's days as our `[since, until)`: from the first day's start to the last
    day's end, in the asked zone; without dates the `range` (default 30 days) up to the end
    of today."""
    zone = _zone(p)
    first, last = _day(p.get("startDate"), "startDate"), _day(p.get("endDate"), "endDate")
    if (first is None) != (last is None):
        raise InvalidParams("startDate and endDate must be provided together", code="BAD_WINDOW")
    if first is None or last is None:
        today = datetime.fromtimestamp(now_ms / 1000, zone).date()
        preset = p.get("range")
        days = MAX_DAYS if preset == "all" else RANGE_DAYS.get(str(preset), 30)
        first, last = today - timedelta(days=days - 1), today
    if first > last:
        raise InvalidParams("startDate must not be after endDate", code="BAD_WINDOW")
    return _start_ms(first, zone), _start_ms(last + timedelta(days=1), zone)


def usage_params(p: Params, now_ms: int | None = None) -> Params:
    """OpenClaw's `sessions.usage` params as those of our `usage.sessions`. `groupBy`
    (our session keys never rotate: a family is its one session) and
    `includeContextWeight` (we keep no system-prompt report) change nothing."""
    key, agent_id = p.get("key"), p.get("agentId")
    if p.get("agentScope") == "all" and (key or agent_id):
        raise InvalidParams(
            "agentScope=all cannot be combined with key or agentId", code="BAD_SCOPE"
        )
    since, until = usage_window(p, int(time.time() * 1000) if now_ms is None else now_ms)
    out: Params = {"since": since, "until": until}
    if isinstance(key, str) and key.strip():
        out["key"] = key.strip()
    if isinstance(agent_id, str) and agent_id.strip():
        out["agentId"] = agent_id.strip()
    limit = p.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool):
        out["limit"] = max(1, min(limit, ROWS_MAX))
    return out


# --- results -----------------------------------------------------------------------------


def _totals() -> dict[str, Any]:
    """OpenClaw's CostUsageTotals, empty."""
    return {
        "input": 0,
        "output": 0,
        "cacheRead": 0,
        "cacheWrite": 0,
        "totalTokens": 0,
        "totalCost": 0.0,
        "inputCost": 0.0,
        "outputCost": 0.0,
        "cacheReadCost": 0.0,
        "cacheWriteCost": 0.0,
        "missingCostEntries": 0,
    }


def _add_cell(totals: dict[str, Any], cell: dict[str, Any]) -> None:
    """One of our cells into OpenClaw's totals: its `input` is the prompt no cache touched
    (our `promptTokens` counts cached ones too); a run of a model without a price is a
    `missingCostEntries` entry."""
    read, write = int(cell["cacheReadTokens"]), int(cell["cacheWriteTokens"])
    totals["input"] += max(int(cell["promptTokens"]) - read - write, 0)
    totals["output"] += int(cell["completionTokens"])
    totals["cacheRead"] += read
    totals["cacheWrite"] += write
    totals["totalTokens"] += int(cell["totalTokens"])
    totals["totalCost"] += float(cell["costUsd"])
    totals["inputCost"] += float(cell["inputCostUsd"])
    totals["outputCost"] += float(cell["outputCostUsd"])
    totals["cacheReadCost"] += float(cell["cacheReadCostUsd"])
    totals["cacheWriteCost"] += float(cell["cacheWriteCostUsd"])
    if not cell["priced"]:
        totals["missingCostEntries"] += int(cell["runs"])
        missing = totals.setdefault("missingCostByModel", {})
        missing[cell["model"]] = missing.get(cell["model"], 0) + int(cell["runs"])


def _model_id(cell: dict[str, Any]) -> str:
    """OpenClaw names a model without its provider (`provider` is beside it)."""
    provider, _, model = str(cell["model"]).partition("/")
    return model or provider


def _by_cost(totals: dict[str, Any]) -> tuple[float, int]:
    return (-totals["totalCost"], -totals["totalTokens"])


@dataclass(slots=True)
class Sums:
    """Cells added up the ways OpenClaw shows them; days in `day_of`'s zone."""

    day_of: Callable[[int], str]
    totals: dict[str, Any] = field(default_factory=_totals)
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    day_models: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    quarters: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, cells: Iterable[dict[str, Any]]) -> Sums:
        for cell in cells:
            start, provider, model = int(cell["start"]), str(cell["provider"]), _model_id(cell)
            day = self.day_of(start)
            _add_cell(self.totals, cell)
            _add_cell(self.days.setdefault(day, _totals()), cell)
            _add_cell(self.agents.setdefault(str(cell["agentId"]), _totals()), cell)
            for row in (
                self.models.setdefault(
                    (provider, model),
                    {"provider": provider, "model": model, "count": 0, "totals": _totals()},
                ),
                self.providers.setdefault(
                    provider, {"provider": provider, "count": 0, "totals": _totals()}
                ),
            ):
                row["count"] += int(cell["calls"])  # OpenClaw: assistant messages with usage
                _add_cell(row["totals"], cell)
            day_model = self.day_models.setdefault(
                (day, provider, model),
                {"date": day, "provider": provider, "model": model, "tokens": 0, "cost": 0.0,
                 "count": 0},
            )  # fmt: skip
            day_model["tokens"] += int(cell["totalTokens"])
            day_model["cost"] += float(cell["costUsd"])
            day_model["count"] += int(cell["calls"])
            _add_cell(self.quarters.setdefault(start, _totals()), cell)
        return self

    def daily(self) -> list[dict[str, Any]]:
        """OpenClaw's `dailyBreakdown`/`costDaily` rows: the day's totals, oldest first."""
        return [
            {"date": day, "tokens": t["totalTokens"], "cost": t["totalCost"], **t}
            for day, t in sorted(self.days.items())
        ]

    def model_rows(self) -> list[dict[str, Any]]:
        return sorted(self.models.values(), key=lambda row: _by_cost(row["totals"]))

    def day_model_rows(self) -> list[dict[str, Any]]:
        return sorted(self.day_models.values(), key=lambda row: (row["date"], -row["cost"]))

    def quarter_rows(self) -> list[dict[str, Any]]:
        """OpenClaw's `utcQuarterHourTokenUsage` (the activity mosaic): UTC, always."""
        rows = []
        for start, t in sorted(self.quarters.items()):
            moment = datetime.fromtimestamp(start / 1000, UTC)
            rows.append({
                "date": moment.strftime("%Y-%m-%d"),
                "quarterIndex": (moment.hour * 60 + moment.minute) // 15,
                **{k: t[k] for k in ("input", "output", "cacheRead", "cacheWrite",
                                     "totalTokens", "totalCost")},
            })  # fmt: skip
        return rows


def day_labeller(zone: tzinfo) -> Callable[[int], str]:
    return lambda ms: datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d")


def session_usage(row: dict[str, Any], day_of: Callable[[int], str]) -> dict[str, Any]:
    """One session's usage as OpenClaw's SessionCostSummary. Its activity is when runs
    concluded (our ledger stamps a run then); no `messageCounts`, `toolUsage` or latencies
    (the ledger counts tokens, not messages)."""
    sums = Sums(day_of).add(row["cells"])
    first, last = int(row["firstAt"]), int(row["lastAt"])
    return {
        "firstActivity": first,
        "lastActivity": last,
        "durationMs": max(0, last - first),
        "activityDates": sorted(sums.days),
        "dailyBreakdown": sums.daily(),
        "utcQuarterHourTokenUsage": sums.quarter_rows(),
        "dailyModelUsage": sums.day_model_rows(),
        "modelUsage": sums.model_rows(),
        **sums.totals,
    }


def session_entry(row: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    models = usage["modelUsage"]
    top = models[0] if models else {}
    return {
        "key": row["key"],
        "scope": "instance",
        "updatedAt": row["lastAt"],
        "agentId": row["agentId"],
        "creatorKey": UNKNOWN_CREATOR,
        "modelProvider": top.get("provider"),
        "model": top.get("model"),
        "usage": usage,
        "hasContextWeight": False,
    }


def sessions_usage(ours: Any, params: Params, now_ms: int) -> dict[str, Any]:
    """Our `usage.sessions` answer as OpenClaw's `sessions.usage` result."""
    zone = _zone(params)
    day_of = day_labeller(zone)
    creator = params.get("creatorKey")
    if creator is not None and creator != UNKNOWN_CREATOR:
        # Only the creator we name exists: any other selects no session.
        ours = {**ours, "sessionCount": 0, "sessions": [], "cells": []}
    entries = []
    activity: dict[tuple[str, ...], int] = {}
    for row in ours["sessions"]:
        usage = session_usage(row, day_of)
        entries.append(session_entry(row, usage))
        dates = tuple(usage["activityDates"])
        activity[dates] = activity.get(dates, 0) + 1
    sums = Sums(day_of).add(ours["cells"])
    session_count = int(ours["sessionCount"])
    daily = sums.daily()
    creators = (
        [{
            "key": UNKNOWN_CREATOR,
            "totals": sums.totals,
            "sessionCount": session_count,
            "daily": daily,
            "sessionActivity": [
                {"dates": list(dates), "sessionCount": n}
                for dates, n in sorted(activity.items(), key=lambda kv: ",".join(kv[0]))
            ],
        }]
        if session_count
        else []
    )  # fmt: skip
    aggregates = {
        "sessionCount": session_count,
        "messages": {
            "total": 0, "user": 0, "assistant": 0, "toolCalls": 0, "toolResults": 0, "errors": 0
        },
        "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
        "byModel": sums.model_rows(),
        "byProvider": sorted(sums.providers.values(), key=lambda row: _by_cost(row["totals"])),
        "byAgent": [
            {"agentId": agent, "totals": t}
            for agent, t in sorted(sums.agents.items(), key=lambda kv: _by_cost(kv[1]))
        ],
        "byChannel": [],
        "byCreator": creators,
        "costDaily": daily,
        "dailyLatency": [],
        "modelDaily": sums.day_model_rows(),
        "daily": [
            {"date": d["date"], "tokens": d["tokens"], "cost": d["cost"], "messages": 0,
             "toolCalls": 0, "errors": 0}
            for d in daily
        ],
    }  # fmt: skip
    return {
        "updatedAt": now_ms,
        "startDate": day_of(int(ours["since"])),
        "endDate": day_of(int(ours["until"]) - 1),
        "sessions": entries,
        "totals": sums.totals,
        "aggregates": aggregates,
        "creatorOptions": [{"key": UNKNOWN_CREATOR}] if session_count else [],
    }
