"""Hourly roll-ups of the usage ledger: folding run records into per-hour cells and reading
cells back as record-shaped entries. Pure (the ledger does the I/O; docs/runtime.md,
"Usage, cost and budgets").

An hour's roll-up holds one cell per (agent, model, provider) that ran in it: the sums of
runs, calls and tokens, the prompt tokens no cache touched (summed per record, as the
cost does), and the cost summed per record at the price the folding runtime had, with a
tag of that price. It is a pure function of the hour's records, made once the hour is
sealed (`SEAL_MS` past its end, when no record stamped in it can still arrive), so any
replica folding it writes the same value: folds need no coordination, and a fold cut
short by a restart is simply done again.

A cell enters the tallies as an entry shaped like a record (`ts` the bucket's start) with
`runs` and the cost fields besides, so the totals, groups, series and costs of `tally.py`
add cells and records alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from aisopod.catalogue.usage import DAY_MS, Bucket
from aisopod.config.sections.providers import ModelCost as Price

K = TypeVar("K")

HOUR_MS = 3_600_000
SEAL_MS = 15 * 60_000
"""An hour is folded this long after it ended. A record reaches the stream within the
publish retry bound (15 s) of its stamp or not at all; this leaves sixty times that."""

# agent, model, provider, runs, calls, prompt, completion, cache read, cache write,
# fresh prompt (neither cache read nor write), cost in nano-USD, tag of the price used
Cell = tuple[str, str, str, int, int, int, int, int, int, int, int, str]


class HourRollup(BaseModel):
    """KV `usage_hours` value, key `<hour start, ms>`."""

    model_config = ConfigDict(frozen=True)

    hour: int
    made: str
    """When stream USAGE was created: a roll-up of a stream since made again is void."""
    cells: list[Cell]


class StaleRollup(Exception):
    """A cell's cost was folded at another price than the current one, which the cell's
    sums cannot reproduce exactly: the caller reads the records instead."""


def hour_of(ts: int) -> int:
    return ts - ts % HOUR_MS


def sealed_before(now_ms: int) -> int:
    """Hours starting before this are sealed: every record stamped in them is stored."""
    return hour_of(now_ms - SEAL_MS)


def rolled_span(since: int, until: int, now_ms: int) -> tuple[int, int] | None:
    """The whole sealed hours inside `[since, until)`, as `[start, end)`; None if none."""
    start = -(-since // HOUR_MS) * HOUR_MS
    end = min(hour_of(until), sealed_before(now_ms))
    return (start, end) if start < end else None


def price_tag(price: Price | None) -> str:
    if price is None:
        return ""
    return f"{price.input!r}/{price.output!r}/{price.cache_read!r}/{price.cache_write!r}"


def fresh_tokens(record: dict[str, Any]) -> int:
    prompt = int(record.get("promptTokens") or 0)
    read = int(record.get("cacheReadTokens") or 0)
    write = int(record.get("cacheWriteTokens") or 0)
    return max(prompt - read - write, 0)


def add_record(cell: list[int], record: dict[str, Any], cost_nano: int) -> None:
    """One record into a cell's first eight sums: runs, calls, prompt, completion, cache
    read, cache write, fresh prompt, cost (nano-USD)."""
    cell[0] += 1
    cell[1] += int(record.get("calls") or 0)
    cell[2] += int(record.get("promptTokens") or 0)
    cell[3] += int(record.get("completionTokens") or 0)
    cell[4] += int(record.get("cacheReadTokens") or 0)
    cell[5] += int(record.get("cacheWriteTokens") or 0)
    cell[6] += fresh_tokens(record)
    cell[7] += cost_nano


def accumulate(sums: dict[K, list[int]], key: K, values: Iterable[int]) -> None:
    """Add `values` element-wise into the sums kept under `key` (a copy when new)."""
    kept = sums.get(key)
    if kept is None:
        sums[key] = [int(v) for v in values]
    else:
        for i, value in enumerate(values):
            kept[i] += int(value)


def sum_fields(s: Sequence[int]) -> dict[str, int]:
    """A cell's first eight sums as the fields of a record-shaped entry."""
    return {
        "runs": s[0],
        "calls": s[1],
        "promptTokens": s[2],
        "completionTokens": s[3],
        "cacheReadTokens": s[4],
        "cacheWriteTokens": s[5],
        "freshTokens": s[6],
        "costNano": s[7],
    }


def fold(
    records: Iterable[dict[str, Any]],
    hours: Iterable[int],
    made: str,
    price_of: Callable[[str], Price | None],
    cost_of: Callable[[Price | None, dict[str, Any]], int],
) -> dict[int, HourRollup]:
    """The roll-ups of `hours` (starts) from every record stamped in them (others are
    ignored); an hour without records gets an empty roll-up, so it reads as folded."""
    wanted = set(hours)
    sums: dict[int, dict[tuple[str, str, str], list[int]]] = {h: {} for h in wanted}
    prices: dict[str, Price | None] = {}
    for record in records:
        cells = sums.get(hour_of(int(record.get("ts") or 0)))
        if cells is None:
            continue
        model = str(record.get("model") or "")
        key = (str(record.get("agentId") or ""), model, str(record.get("provider") or ""))
        if model not in prices:
            prices[model] = price_of(model)
        add_record(cells.setdefault(key, [0] * 8), record, cost_of(prices[model], record))
    return {
        hour: HourRollup(
            hour=hour,
            made=made,
            cells=[
                (*key, *values, price_tag(prices[key[1]])) for key, values in sorted(cells.items())
            ],
        )
        for hour, cells in sums.items()
    }


def _cell(agent: str, model: str, provider: str, sums: list[int], tag: str) -> Cell:
    runs, calls, prompt, completion, read, write, fresh, cost = sums
    return (agent, model, provider, runs, calls, prompt, completion, read, write, fresh, cost, tag)


def merge(start: int, rollups: Iterable[HourRollup]) -> HourRollup:
    """One roll-up of the cells of `rollups` (a day's hours), starting at `start`."""
    sums: dict[tuple[str, str, str, str], list[int]] = {}
    made = ""
    for rollup in rollups:
        made = rollup.made
        for cell in rollup.cells:
            accumulate(sums, (cell[0], cell[1], cell[2], cell[11]), cell[3:11])
    cells = [
        _cell(agent, model, provider, values, tag)
        for (agent, model, provider, tag), values in sorted(sums.items())
    ]
    return HourRollup.model_construct(hour=start, made=made, cells=cells)


def by_day(rollups: list[HourRollup], days: dict[int, HourRollup]) -> list[HourRollup]:
    """`rollups` (consecutive hours) with each whole UTC day's hours replaced by their
    merge, kept in `days` (sealed hours do not change: neither does their day)."""
    out = []
    i = 0
    while i < len(rollups):
        rollup = rollups[i]
        day = rollup.hour - rollup.hour % DAY_MS
        if rollup.hour == day and i + 24 <= len(rollups):
            merged = days.get(day)
            if merged is None or merged.made != rollup.made:
                merged = days[day] = merge(day, rollups[i : i + 24])
            out.append(merged)
            i += 24
        else:
            out.append(rollup)
            i += 1
    return out


def entries(
    rollups: Iterable[HourRollup], bucket: Bucket | None, agent_id: str | None
) -> list[dict[str, Any]]:
    """The cells of `rollups` merged per series bucket (`bucket`; None: the whole span),
    agent, model and provider, as record-shaped entries."""
    merged: dict[tuple[int, str, str, str, str], list[int]] = {}
    first = -1
    for rollup in rollups:
        if first < 0:
            first = rollup.hour
        start = rollup.hour - rollup.hour % (DAY_MS if bucket == "day" else HOUR_MS)
        slot = first if bucket is None else start
        for cell in rollup.cells:
            if agent_id is not None and cell[0] != agent_id:
                continue
            accumulate(merged, (slot, cell[0], cell[1], cell[2], cell[11]), cell[3:11])
    return [
        {
            "ts": slot,
            "agentId": agent,
            "model": model,
            "provider": provider,
            **sum_fields(s),
            "priceTag": tag,
        }
        for (slot, agent, model, provider, tag), s in merged.items()
    ]


def cell_cost_nano(price: Price, entry: dict[str, Any]) -> int:
    """The cost of a cell at `price`, exactly what its records' costs add up to.

    At the price it was folded at, the stored sum. At another price whose figures have at
    most three decimals (cents and tenths of a cent per million tokens), the cost of every
    token is a whole number of nano-USD, so the per-record costs are exact and their sum
    is the cost of the sums. Otherwise StaleRollup."""
    if entry["priceTag"] == price_tag(price):
        return int(entry["costNano"])
    rates = exact_rates(price)
    if rates is None:
        raise StaleRollup(entry["model"])
    fresh, read, write, output = rates
    return (
        int(entry["freshTokens"]) * fresh
        + int(entry["cacheReadTokens"]) * read
        + int(entry["cacheWriteTokens"]) * write
        + int(entry["completionTokens"]) * output
    )


def exact_rates(price: Price) -> tuple[int, int, int, int] | None:
    """Nano-USD per fresh prompt, cache-read, cache-write and completion token of `price`,
    when each is a whole number (figures with at most three decimals); else None."""
    rates = (
        _exact(price.input),
        _exact(price.cache_read if price.cache_read is not None else price.input),
        _exact(price.cache_write if price.cache_write is not None else price.input),
        _exact(price.output),
    )
    if None in rates:
        return None
    return rates  # type: ignore[return-value]


def _exact(per_million_usd: float) -> int | None:
    """Nano-USD per token of a price, when that is a whole number."""
    nano = Decimal(repr(per_million_usd)) * 1000
    return int(nano) if nano == nano.to_integral_value() else None
