"""Adding usage records up: windows, buckets, totals per provider/model/agent, costs. Pure.

A usage record is what the ledger stores per finished run (`ledger.py`): `{runId, ts,
sessionKey, agentId, model, provider, principal, status, calls, promptTokens,
completionTokens, cacheReadTokens, cacheWriteTokens, costNanoUsd}`. The ledger also hands
out roll-up cells shaped like records (`rollup.py`: `runs` and cost fields besides); every
function here adds them alike.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aisopod.catalogue.usage import (
    DAY_MS,
    DEFAULT_WINDOW_MS,
    MAX_WINDOW_MS,
    QUARTER_MS,
    AgentCost,
    AgentUsage,
    Bucket,
    CostPoint,
    ModelCost,
    ModelUsage,
    ProviderUsage,
    RunCost,
    SessionUsageRow,
    UsageCell,
    UsagePoint,
    UsageRunPoint,
    UsageSessionsResult,
    UsageTokens,
)
from aisopod.config.sections.providers import ModelCost as Price
from aisopod.config.sections.providers import ProvidersSection
from aisopod.errors import InvalidParams
from aisopod_runtime.usage.rollup import cell_cost_nano, price_tag
from aisopod_runtime.usage.session_rollup import (
    Span,
    add_span,
    cost_parts_nano,
    entry_cost_parts_nano,
)

HOUR_MS = 3_600_000
HOURLY_MAX_MS = 31 * DAY_MS
"""Hour buckets for windows up to a month (744 points); longer windows count by day."""
NANO = 1_000_000_000


@dataclass(slots=True)
class Tally:
    runs: int = 0
    calls: int = 0
    prompt: int = 0
    completion: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.runs += int(record.get("runs", 1))  # a roll-up cell counts its runs
        self.calls += int(record.get("calls") or 0)
        self.prompt += int(record.get("promptTokens") or 0)
        self.completion += int(record.get("completionTokens") or 0)
        self.cache_read += int(record.get("cacheReadTokens") or 0)
        self.cache_write += int(record.get("cacheWriteTokens") or 0)

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def fields(self) -> dict[str, int]:
        return {
            "runs": self.runs,
            "calls": self.calls,
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
            "total_tokens": self.total,
        }

    def tokens(self) -> UsageTokens:
        return UsageTokens(**self.fields())


# -- windows and buckets -------------------------------------------------------------------


def window(since: int | None, until: int | None, now_ms: int) -> tuple[int, int]:
    """`[since, until)` with the defaults: until now, since 30 days before until."""
    end = until if until is not None else now_ms
    start = since if since is not None else end - DEFAULT_WINDOW_MS
    if start >= end:
        raise InvalidParams("since must be before until", code="BAD_WINDOW")
    if end - start > MAX_WINDOW_MS:
        raise InvalidParams("the window is longer than 366 days", code="BAD_WINDOW")
    return start, end


def bucket_for(since: int, until: int, asked: Bucket | None) -> Bucket:
    if asked == "hour" and until - since > HOURLY_MAX_MS:
        raise InvalidParams("hour buckets need a window of at most 31 days", code="BAD_WINDOW")
    if asked is not None:
        return asked
    return "hour" if until - since <= 2 * DAY_MS else "day"


def bucket_start(ts: int, bucket: Bucket) -> int:
    step = HOUR_MS if bucket == "hour" else DAY_MS
    return ts - ts % step


def bucket_starts(since: int, until: int, bucket: Bucket) -> list[int]:
    step = HOUR_MS if bucket == "hour" else DAY_MS
    return list(range(bucket_start(since, bucket), until, step))


_last_month: tuple[int, int, str] = (0, 0, "")
"""The month last named: (its first ms, the next month's first ms, `YYYY-MM`)."""


def month_of(ts: int) -> str:
    """`YYYY-MM` (UTC) of epoch ms `ts`; the month last asked for is remembered (every run
    charged asks, almost always for the current month)."""
    global _last_month
    first, after, name = _last_month
    if first <= ts < after:
        return name
    at = datetime.fromtimestamp(ts / 1000, UTC)
    name = at.strftime("%Y-%m")
    start = int(datetime(at.year, at.month, 1, tzinfo=UTC).timestamp() * 1000)
    _last_month = (start, month_end(ts), name)
    return name


def month_end(ts: int) -> int:
    """The first millisecond of the next UTC month: when a month's budgets reset."""
    at = datetime.fromtimestamp(ts / 1000, UTC)
    days = calendar.monthrange(at.year, at.month)[1]
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000) + days * DAY_MS


# -- prices ---------------------------------------------------------------------------------


def price_of(models: ProvidersSection, model_ref: str) -> Price | None:
    """The configured price of `<provider>/<model>`, or None."""
    provider_id, _, model_id = model_ref.partition("/")
    for provider in models.providers:
        if provider.id == provider_id:
            for entry in provider.models:
                if entry.id == model_id:
                    return entry.cost
    return None


def cost_nano_usd(price: Price | None, record: dict[str, Any]) -> int:
    """The cost of a record's tokens at `price`, in billionths of a dollar (0 unpriced).

    Integers, so budget counters add up exactly in any order."""
    if price is None:
        return 0
    if "priceTag" in record:
        return cell_cost_nano(price, record)
    prompt = int(record.get("promptTokens") or 0)
    read = int(record.get("cacheReadTokens") or 0)
    write = int(record.get("cacheWriteTokens") or 0)
    fresh = max(prompt - read - write, 0)
    per_million = (
        fresh * price.input
        + read * (price.cache_read if price.cache_read is not None else price.input)
        + write * (price.cache_write if price.cache_write is not None else price.input)
        + int(record.get("completionTokens") or 0) * price.output
    )
    return round(per_million * 1000)  # USD per million tokens → nano-USD per token: x 1000


def usd(nano: int) -> float:
    return round(nano / NANO, 9)


# -- totals ---------------------------------------------------------------------------------


def in_window(records: Iterable[dict[str, Any]], since: int, until: int) -> list[dict[str, Any]]:
    return [r for r in records if since <= int(r.get("ts") or 0) < until]


def grouped(records: Iterable[dict[str, Any]], field: str) -> dict[str, Tally]:
    groups: dict[str, Tally] = {}
    for record in records:
        groups.setdefault(str(record.get(field) or ""), Tally()).add(record)
    return dict(sorted(groups.items(), key=lambda kv: (-kv[1].total, kv[0])))


def totals(records: Iterable[dict[str, Any]]) -> Tally:
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally


def summary_fields(records: list[dict[str, Any]], since: int, until: int) -> dict[str, Any]:
    """The fields of `UsageSummary`: totals and per provider, model and agent."""
    providers = {r.get("model"): r.get("provider") for r in records}
    return {
        "since": since,
        "until": until,
        "totals": totals(records).tokens(),
        "by_provider": [
            ProviderUsage(provider=key, **tally.fields())
            for key, tally in grouped(records, "provider").items()
        ],
        "by_model": [
            ModelUsage(model=key, provider=str(providers.get(key) or ""), **tally.fields())
            for key, tally in grouped(records, "model").items()
        ],
        "by_agent": [
            AgentUsage(agent_id=key, **tally.fields())
            for key, tally in grouped(records, "agentId").items()
        ],
    }


def series(
    records: list[dict[str, Any]], since: int, until: int, bucket: Bucket
) -> list[UsagePoint]:
    slots = {start: Tally() for start in bucket_starts(since, until, bucket)}
    for record in records:
        slot = slots.get(bucket_start(int(record["ts"]), bucket))
        if slot is not None:
            slot.add(record)
    return [UsagePoint(start=start, **tally.fields()) for start, tally in slots.items()]


@dataclass(slots=True)
class Costs:
    total_nano: int
    by_model: list[ModelCost]
    by_agent: list[AgentCost]
    series: list[CostPoint]
    unpriced: list[str]


def costs(
    records: list[dict[str, Any]],
    models: ProvidersSection,
    since: int,
    until: int,
    bucket: Bucket,
) -> Costs:
    """Cost at the current prices: a price added or corrected later applies to the past."""
    prices = {ref: price_of(models, ref) for ref in {str(r.get("model")) for r in records}}
    slots = dict.fromkeys(bucket_starts(since, until, bucket), 0)
    per_agent: dict[str, int] = {}
    per_model: dict[str, int] = {}
    for record in records:
        nano = cost_nano_usd(prices[str(record.get("model"))], record)
        per_model[str(record.get("model"))] = per_model.get(str(record.get("model")), 0) + nano
        agent = str(record.get("agentId") or "")
        per_agent[agent] = per_agent.get(agent, 0) + nano
        start = bucket_start(int(record["ts"]), bucket)
        if start in slots:
            slots[start] += nano
    by_model = [
        ModelCost(
            model=ref,
            provider=ref.partition("/")[0],
            prompt_tokens=tally.prompt,
            completion_tokens=tally.completion,
            cache_read_tokens=tally.cache_read,
            cache_write_tokens=tally.cache_write,
            cost_usd=usd(per_model.get(ref, 0)),
            priced=prices.get(ref) is not None,
        )
        for ref, tally in grouped(records, "model").items()
    ]
    by_model.sort(key=lambda m: (-m.cost_usd, m.model))
    return Costs(
        total_nano=sum(per_model.values()),
        by_model=by_model,
        by_agent=[
            AgentCost(agent_id=agent, cost_usd=usd(nano))
            for agent, nano in sorted(per_agent.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        series=[CostPoint(start=start, cost_usd=usd(nano)) for start, nano in slots.items()],
        unpriced=sorted(ref for ref, price in prices.items() if price is None),
    )


# -- per session ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Cell:
    """A `UsageCell` being added up: tokens, and costs in nano-dollars."""

    tally: Tally = field(default_factory=Tally)
    input_nano: int = 0
    output_nano: int = 0
    read_nano: int = 0
    write_nano: int = 0
    cost_nano: int = 0

    def add(self, record: dict[str, Any], price: Price | None) -> None:
        self.tally.add(record)
        self.cost_nano += cost_nano_usd(price, record)
        if price is None:
            return
        # The parts of `cost_nano_usd`'s sum, each rounded alone per record (so they may
        # differ from the cost by a few nano-dollars); the cost itself is the ledger's one.
        if "priceTag" in record:  # a roll-up cell: the sums of its records' parts
            parts = entry_cost_parts_nano(price, record)
        else:
            parts = cost_parts_nano(price, record)
        self.input_nano += parts[0]
        self.output_nano += parts[1]
        self.read_nano += parts[2]
        self.write_nano += parts[3]

    def add_folded(self, entry: dict[str, Any]) -> None:
        """A roll-up cell folded at the current price: its stored sums (what `add` would
        give, without recomputing the tag per cell)."""
        self.tally.add(entry)
        self.cost_nano += int(entry["costNano"])
        self.input_nano += int(entry["inputNano"])
        self.output_nano += int(entry["outputNano"])
        self.read_nano += int(entry["readNano"])
        self.write_nano += int(entry["writeNano"])

    def out(self, start: int, agent_id: str, model: str, priced: bool) -> UsageCell:
        return UsageCell(
            start=start,
            agent_id=agent_id,
            model=model,
            provider=model.partition("/")[0],
            **self.tally.fields(),
            input_cost_usd=usd(self.input_nano),
            output_cost_usd=usd(self.output_nano),
            cache_read_cost_usd=usd(self.read_nano),
            cache_write_cost_usd=usd(self.write_nano),
            cost_usd=usd(self.cost_nano),
            priced=priced,
        )


CellKey = tuple[int, str, str]  # quarter hour start, agent id, model


def _cells(
    records: Iterable[dict[str, Any]], prices: dict[str, Price | None]
) -> dict[CellKey, _Cell]:
    cells: dict[CellKey, _Cell] = {}
    tags: dict[str, str] = {}
    for record in records:
        ts = int(record["ts"])
        model = str(record.get("model"))
        key = (ts - ts % QUARTER_MS, str(record.get("agentId") or ""), model)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = _Cell()
        price = prices[model]
        if price is not None and "priceTag" in record:
            tag = tags.get(model)
            if tag is None:
                tag = tags[model] = price_tag(price)
            if record["priceTag"] == tag:
                cell.add_folded(record)
                continue
        cell.add(record, price)
    return dict(sorted(cells.items()))


def _cell_list(cells: dict[CellKey, _Cell], prices: dict[str, Price | None]) -> list[UsageCell]:
    return [
        cell.out(start, agent, model, prices[model] is not None)
        for (start, agent, model), cell in cells.items()
    ]


def spans_of(records: Iterable[dict[str, Any]]) -> dict[str, Span]:
    """The span of each session of `records`."""
    spans: dict[str, Span] = {}
    for record in records:
        ts = int(record["ts"])
        add_span(
            spans, str(record.get("sessionKey") or ""), str(record.get("agentId") or ""), ts, ts
        )
    return spans


def per_session(
    records: list[dict[str, Any]], models: ProvidersSection, since: int, until: int, limit: int
) -> UsageSessionsResult:
    """Records as `usage.sessions` shows them (`session_rows`)."""
    by_session: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_session.setdefault(str(record.get("sessionKey") or ""), []).append(record)
    return session_rows(
        spans_of(records), by_session.__getitem__, records, models, since, until, limit
    )


def session_rows(
    spans: dict[str, Span],
    entries_of: Callable[[str], list[dict[str, Any]]],
    everything: list[dict[str, Any]],
    models: ProvidersSection,
    since: int,
    until: int,
    limit: int,
) -> UsageSessionsResult:
    """`usage.sessions`: the sessions most recently active first (last stamp, then key), at
    most `limit` rows, each with its entries (`entries_of`: records and roll-up cells)
    added up per quarter, agent and model; the cells of `everything` (all sessions) the
    same way; costs at the current prices."""
    prices: dict[str, Price | None] = {}

    def priced(entries: Iterable[dict[str, Any]]) -> dict[str, Price | None]:
        for ref in {str(e.get("model")) for e in entries} - prices.keys():
            prices[ref] = price_of(models, ref)
        return prices

    newest_first = sorted(spans.items(), key=lambda kv: (-kv[1][2], kv[0]))
    rows = []
    for key, (agent, first, last) in newest_first[:limit]:
        runs = entries_of(key)
        cells = _cells(runs, priced(runs))
        rows.append(
            SessionUsageRow(
                key=key,
                agent_id=agent,
                first_at=first,
                last_at=last,
                totals=totals(runs).tokens(),
                cost_usd=usd(sum(cell.cost_nano for cell in cells.values())),
                cells=_cell_list(cells, prices),
            )
        )
    return UsageSessionsResult(
        since=since,
        until=until,
        session_count=len(spans),
        sessions=rows,
        cells=_cell_list(_cells(everything, priced(everything)), prices),
    )


# -- one session's runs ---------------------------------------------------------------------


def run_points(
    records: list[dict[str, Any]], models: ProvidersSection, max_points: int
) -> list[UsageRunPoint]:
    """Records (oldest first) as at most `max_points` points: consecutive runs added up,
    `ceil(n / max_points)` to a point, each stamped with its last run."""
    prices = {ref: price_of(models, ref) for ref in {str(r.get("model")) for r in records}}
    step = -(-len(records) // max_points) if records else 1
    points = []
    for at in range(0, len(records), step):
        runs = records[at : at + step]
        cost = sum(cost_nano_usd(prices[str(r.get("model"))], r) for r in runs)
        points.append(
            UsageRunPoint(
                ts=int(runs[-1]["ts"]),
                **totals(runs).fields(),
                cost_usd=usd(cost),
                priced=all(prices[str(r.get("model"))] is not None for r in runs),
            )
        )
    return points


def run_costs(records: Iterable[dict[str, Any]], models: ProvidersSection) -> list[RunCost]:
    """Each record's run with its tokens and its cost at the current prices."""
    out = []
    for record in records:
        price = price_of(models, str(record.get("model")))
        out.append(
            RunCost(
                run_id=str(record.get("runId")),
                model=str(record.get("model")),
                total_tokens=totals([record]).total,
                cost_usd=usd(cost_nano_usd(price, record)),
                priced=price is not None,
            )
        )
    return out
