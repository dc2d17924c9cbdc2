"""Hourly roll-ups (no I/O): folded cells add up to exactly what their records add up to —
totals, groups, series and costs, at the folding price and at another — whatever the
order the records come in, and the sealed span of a window."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from aisopod.catalogue.usage import DAY_MS, Bucket
from aisopod.config.sections.providers import ProvidersSection
from aisopod_runtime.usage.rollup import (
    HOUR_MS,
    SEAL_MS,
    HourRollup,
    StaleRollup,
    by_day,
    entries,
    fold,
    rolled_span,
)
from aisopod_runtime.usage.tally import cost_nano_usd, costs, price_of, series, summary_fields

from .conftest import providers

T0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)

MODELS = providers({"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75})


def records(count: int, span_ms: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        prompt = rng.randrange(0, 5000)
        read = rng.randrange(0, 3000)
        out.append(
            {
                "runId": f"r{n}",
                "ts": T0 + rng.randrange(span_ms),
                "sessionKey": f"agent:a{n % 3}:s{n % 7}",
                "agentId": f"a{n % 3}",
                "model": rng.choice(["paid/m1", "paid/m2", "paid/free", "gone/x"]),
                "provider": "paid",
                "calls": rng.randrange(1, 4),
                "promptTokens": prompt,
                "completionTokens": rng.randrange(0, 2000),
                "cacheReadTokens": read,
                "cacheWriteTokens": rng.randrange(0, 800),  # read + write may exceed prompt
            }
        )
    out.sort(key=lambda r: r["ts"])
    return out


def folded(recs: list[dict[str, Any]], hours: range, models: ProvidersSection) -> list[HourRollup]:
    by_hour = fold(recs, hours, "made", lambda ref: price_of(models, ref), cost_nano_usd)
    return [by_hour[h] for h in hours]


def answers(
    items: list[dict[str, Any]], since: int, until: int, bucket: Bucket, models: ProvidersSection
) -> tuple[Any, ...]:
    priced = costs(items, models, since, until, bucket)
    return (
        {
            k: v if isinstance(v, int) else repr(v)
            for k, v in summary_fields(items, since, until).items()
        },
        series(items, since, until, bucket),
        priced.total_nano,
        priced.by_model,
        priced.by_agent,
        priced.series,
        priced.unpriced,
    )


@pytest.mark.parametrize("bucket", ["hour", "day"])
@pytest.mark.parametrize("agent", [None, "a1"])
def test_cells_add_up_to_their_records(bucket: Bucket, agent: str | None) -> None:
    recs = records(3000, 3 * DAY_MS)
    if agent is not None:
        recs = [r for r in recs if r["agentId"] == agent]
    since, until = T0, T0 + 3 * DAY_MS
    hours = range(since, until, HOUR_MS)
    rollups = folded(recs, hours, MODELS)
    if bucket == "day":  # whole days merged first, as the ledger does
        days: dict[int, HourRollup] = {}
        assert len(by_day(rollups[5:], days)) == 19 + 2 and sorted(days) == [
            T0 + DAY_MS,
            T0 + 2 * DAY_MS,
        ]
        rollups = by_day(rollups, days)
        assert len(rollups) == 3
    cells = entries(rollups, bucket, agent)
    # One cell per agent and model (4 x 3) and bucket at most: hours, or days.
    assert len(cells) <= (len(hours) if bucket == "hour" else 3) * 12 < len(recs) * 3
    assert answers(cells, since, until, bucket, MODELS) == answers(
        recs, since, until, bucket, MODELS
    )


def test_a_window_of_records_and_cells_at_a_changed_price() -> None:
    recs = records(2000, 2 * DAY_MS)
    since, until = T0 + 5 * HOUR_MS + 17, T0 + 2 * DAY_MS - 1234  # partial hours at both ends
    start, end = T0 + 6 * HOUR_MS, T0 + 47 * HOUR_MS
    rollups = folded(recs, range(start, end, HOUR_MS), MODELS)
    mixed = [r for r in recs if since <= r["ts"] < start or end <= r["ts"] < until]
    mixed += entries(rollups, "hour", None)
    truth = [r for r in recs if since <= r["ts"] < until]
    assert answers(mixed, since, until, "hour", MODELS) == answers(
        truth, since, until, "hour", MODELS
    )
    # A price of whole tenths of a cent per million: the sums give the records' cost.
    cheaper = providers({"input": 2.5, "output": 10.125, "cacheRead": 0.001})
    assert answers(mixed, since, until, "hour", cheaper) == answers(
        truth, since, until, "hour", cheaper
    )
    # Finer than that, per-record rounding matters: the cells say so.
    odd = providers({"input": 0.0375, "output": 0.15})
    with pytest.raises(StaleRollup):
        costs(mixed, odd, since, until, "hour")


def test_folds_are_the_same_whatever_the_order_and_empty_hours_are_folded() -> None:
    recs = records(500, DAY_MS)
    hours = range(T0 - 2 * HOUR_MS, T0 + DAY_MS, HOUR_MS)
    shuffled = list(recs)
    random.Random(3).shuffle(shuffled)
    assert folded(recs, hours, MODELS) == folded(shuffled + recs[:0], hours, MODELS)
    first = folded(recs, hours, MODELS)
    assert first[0].cells == [] and first[0].hour == T0 - 2 * HOUR_MS
    # Records outside the hours asked are not counted.
    assert sum(
        c[3] for r in folded(recs, range(T0, T0 + HOUR_MS, HOUR_MS), MODELS) for c in r.cells
    ) == len([r for r in recs if T0 <= r["ts"] < T0 + HOUR_MS])
    # The stored value reads back the same.
    assert HourRollup.model_validate_json(first[5].model_dump_json()) == first[5]


def test_the_sealed_span_of_a_window() -> None:
    now = T0 + 10 * HOUR_MS + 5 * 60_000
    # The hour that ended five minutes ago is not sealed yet: records may still arrive.
    assert rolled_span(T0 - 1, now, now) == (T0, T0 + 9 * HOUR_MS)
    assert rolled_span(T0, T0 + 3 * HOUR_MS + 1, now) == (T0, T0 + 3 * HOUR_MS)
    assert rolled_span(T0 + 1, T0 + 2 * HOUR_MS - 1, now) is None
    later = T0 + 10 * HOUR_MS + SEAL_MS
    assert rolled_span(T0, later, later) == (T0, T0 + 10 * HOUR_MS)
