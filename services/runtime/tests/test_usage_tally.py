"""Adding usage records up (no I/O): windows, buckets, groups, prices, budgets' states."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aisopod.catalogue.usage import DAY_MS
from aisopod.config.sections.providers import ProvidersSection
from aisopod.config.sections.usage import Budget
from aisopod.errors import InvalidParams
from aisopod_runtime.usage.budgets import Spend, _state, counter_key, token_id
from aisopod_runtime.usage.tally import (
    HOUR_MS,
    bucket_for,
    cost_nano_usd,
    costs,
    month_end,
    month_of,
    per_session,
    price_of,
    run_costs,
    run_points,
    series,
    summary_fields,
    usd,
    window,
)

T0 = int(datetime(2026, 12, 6, tzinfo=UTC).timestamp() * 1000)
MODELS = ProvidersSection.model_validate(
    {
        "providers": [
            {
                "id": "paid",
                "kind": "openai",
                "baseUrl": "http://127.0.0.1:9/v1",
                "models": [
                    {
                        "id": "m1",
                        "cost": {"input": 2.0, "output": 8.0, "cacheRead": 0.5, "cacheWrite": 2.5},
                    },
                    {"id": "m2", "cost": {"input": 1.0, "output": 1.0}},
                    {"id": "free"},
                ],
            }
        ]
    }
)


def record(ts: int, model: str = "paid/m1", agent: str = "main", **tokens: int) -> dict:
    return {
        "runId": f"r{ts}",
        "ts": ts,
        "sessionKey": f"agent:{agent}:main",
        "agentId": agent,
        "model": model,
        "provider": model.partition("/")[0],
        "calls": tokens.pop("calls", 1),
        "promptTokens": tokens.get("prompt", 0),
        "completionTokens": tokens.get("completion", 0),
        "cacheReadTokens": tokens.get("read", 0),
        "cacheWriteTokens": tokens.get("write", 0),
    }


def test_window_defaults_and_bounds() -> None:
    assert window(None, None, T0) == (T0 - 30 * DAY_MS, T0)
    assert window(T0 - 5, None, T0) == (T0 - 5, T0)
    for since, until in ((T0, T0), (T0 + 1, T0), (T0 - 367 * DAY_MS, T0)):
        with pytest.raises(InvalidParams):
            window(since, until, T0)


def test_buckets_follow_the_window() -> None:
    assert bucket_for(T0, T0 + DAY_MS, None) == "hour"
    assert bucket_for(T0, T0 + 3 * DAY_MS, None) == "day"
    assert bucket_for(T0, T0 + 3 * DAY_MS, "hour") == "hour"
    with pytest.raises(InvalidParams):
        bucket_for(T0, T0 + 32 * DAY_MS, "hour")


def test_totals_groups_and_series() -> None:
    records = [
        record(T0 + 10, prompt=10, completion=5, read=4, calls=2),
        record(T0 + HOUR_MS + 1, model="paid/m2", agent="helper", prompt=100, completion=1),
        record(T0 + HOUR_MS + 2, prompt=1, completion=1),
    ]
    fields = summary_fields(records, T0, T0 + 3 * HOUR_MS)
    totals = fields["totals"]
    assert (totals.runs, totals.calls, totals.total_tokens) == (3, 4, 118)
    assert totals.cache_read_tokens == 4
    # Most tokens first.
    assert [m.model for m in fields["by_model"]] == ["paid/m2", "paid/m1"]
    assert [(a.agent_id, a.total_tokens) for a in fields["by_agent"]] == [
        ("helper", 101),
        ("main", 17),
    ]
    assert [(p.provider, p.runs) for p in fields["by_provider"]] == [("paid", 3)]
    points = series(records, T0, T0 + 3 * HOUR_MS, "hour")
    assert [(p.start, p.runs, p.total_tokens) for p in points] == [
        (T0, 1, 15),
        (T0 + HOUR_MS, 2, 103),
        (T0 + 2 * HOUR_MS, 0, 0),
    ]


def test_cost_charges_cache_reads_and_writes_at_their_prices() -> None:
    price = price_of(MODELS, "paid/m1")
    assert price is not None and price_of(MODELS, "paid/free") is None
    assert price_of(MODELS, "other/m1") is None
    # 1M fresh input at 2, 1M cache read at 0.5, 1M cache write at 2.5, 1M output at 8.
    big = record(T0, prompt=3_000_000, read=1_000_000, write=1_000_000, completion=1_000_000)
    assert cost_nano_usd(price, big) == 13_000_000_000
    # Without cache prices, cached tokens cost the input price.
    assert cost_nano_usd(price_of(MODELS, "paid/m2"), record(T0, prompt=10, read=5)) == 10_000
    assert cost_nano_usd(None, big) == 0


def test_costs_of_a_window() -> None:
    records = [
        record(T0 + 1, prompt=1000, completion=1000),  # $0.002 + $0.008
        record(T0 + DAY_MS + 1, model="paid/free", prompt=50),
        record(T0 + DAY_MS + 2, model="paid/m2", agent="helper", prompt=1000),
    ]
    priced = costs(records, MODELS, T0, T0 + 2 * DAY_MS, "day")
    assert priced.total_nano == 11_000_000
    assert [(m.model, m.cost_usd, m.priced) for m in priced.by_model] == [
        ("paid/m1", 0.01, True),
        ("paid/m2", 0.001, True),
        ("paid/free", 0.0, False),
    ]
    assert priced.unpriced == ["paid/free"]
    assert [(p.start, p.cost_usd) for p in priced.series] == [
        (T0, 0.01),
        (T0 + DAY_MS, 0.001),
    ]


def test_months_and_budget_states() -> None:
    assert month_of(T0) == "2026-12"
    assert month_end(T0) == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert month_end(T0 - 10 * DAY_MS) == int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    assert counter_key("2026-12", "token", "tok_1") == "2026-12.token.tok_1"
    assert token_id("token:tok_1") == "tok_1" and token_id("admin") is None
    budget = Budget(monthly_tokens=100, monthly_cost_usd=1.0)
    under = _state("agent", "main", budget, Spend(99, 999_999_999, 3), "2026-12", T0)
    assert not under.exhausted and under.spent_cost_usd == 0.999999999
    assert _state("agent", "main", budget, Spend(100, 0, 3), "2026-12", T0).exhausted
    assert _state("agent", "main", budget, Spend(0, 1_000_000_000, 3), "2026-12", T0).exhausted
    with pytest.raises(ValueError):
        Budget()


def session_record(ts: int, session: str, model: str = "paid/m1", **tokens: int) -> dict:
    return {**record(ts, model, **tokens), "sessionKey": f"agent:main:{session}"}


def test_per_session_rows_newest_first_with_cells_and_every_run_in_the_totals() -> None:
    records = [
        session_record(T0 + 60_000, "a", prompt=1000, completion=100, read=400, write=100),
        session_record(T0 + 120_000, "b", model="paid/free", prompt=50, completion=5),
        session_record(T0 + 20 * 60_000, "a", model="paid/m2", prompt=10, completion=10),
        session_record(T0 + 30 * 60_000, "c", prompt=7, completion=3),
    ]
    report = per_session(records, MODELS, T0, T0 + DAY_MS, limit=2)
    assert report.session_count == 3
    assert [row.key for row in report.sessions] == ["agent:main:c", "agent:main:a"]
    a = report.sessions[1]
    assert (a.first_at, a.last_at) == (T0 + 60_000, T0 + 20 * 60_000)
    assert a.totals.runs == 2 and a.totals.total_tokens == 1120
    assert [(c.start, c.model) for c in a.cells] == [(T0, "paid/m1"), (T0 + 900_000, "paid/m2")]
    first = a.cells[0]
    # 500 fresh × $2 + 400 read × $0.5 + 100 written × $2.5 + 100 out × $8, per million.
    assert (first.input_cost_usd, first.cache_read_cost_usd) == (0.001, 0.0002)
    assert (first.cache_write_cost_usd, first.output_cost_usd) == (0.00025, 0.0008)
    assert first.cost_usd == usd(cost_nano_usd(price_of(MODELS, "paid/m1"), records[0]))
    assert first.cost_usd == pytest.approx(0.00225)
    assert a.cost_usd == pytest.approx(0.00225 + 0.00002)
    # The cells of all sessions: the row left out by the limit (b) is counted.
    assert sum(c.total_tokens for c in report.cells) == 1120 + 55 + 10
    unpriced = [c for c in report.cells if c.model == "paid/free"]
    assert [(c.priced, c.cost_usd) for c in unpriced] == [(False, 0.0)]


def test_per_session_without_records_is_empty() -> None:
    report = per_session([], MODELS, T0, T0 + DAY_MS, limit=50)
    assert (report.session_count, report.sessions, report.cells) == (0, [], [])


def test_month_of_at_the_edges_of_months_asked_in_any_order() -> None:
    def ms(*args: int) -> int:
        return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)

    asked = [
        (ms(2026, 12, 31, 23, 59, 59) + 999, "2026-12"),
        (ms(2027, 1, 1), "2027-01"),
        (ms(2026, 12, 1), "2026-12"),
        (ms(2026, 12, 1) - 1, "2026-11"),
        (ms(2026, 12, 15), "2026-12"),
        (ms(2024, 2, 29, 12), "2024-02"),
        (ms(2024, 3, 1) - 1, "2024-02"),
        (ms(2024, 3, 1), "2024-03"),
    ]
    for ts, month in asked * 2:  # the second pass finds each one's neighbour remembered
        assert month_of(ts) == month
        assert month_of(ts) == datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m")


def test_run_points_one_per_run_priced_at_the_current_prices() -> None:
    records = [
        record(T0, prompt=1000, completion=100, read=400),
        record(T0 + 60_000, model="paid/free", prompt=10, completion=5),
    ]
    first, second = run_points(records, MODELS, max_points=200)
    assert (first.ts, first.runs, first.total_tokens) == (T0, 1, 1100)
    # (1000 - 400) x 2.0 + 400 x 0.5 + 100 x 8.0 per million tokens.
    assert first.cost_usd == usd(cost_nano_usd(price_of(MODELS, "paid/m1"), records[0]))
    assert first.cost_usd == 0.0022 and first.priced
    assert (second.cost_usd, second.priced, second.total_tokens) == (0.0, False, 15)


def test_run_points_past_the_cap_add_consecutive_runs_up() -> None:
    records = [record(T0 + i * 1000, prompt=10, completion=1) for i in range(7)]
    points = run_points(records, MODELS, max_points=3)
    # ceil(7 / 3) = 3 runs a point, the last one fewer; each stamped with its last run.
    assert [(p.runs, p.ts) for p in points] == [(3, T0 + 2000), (3, T0 + 5000), (1, T0 + 6000)]
    assert sum(p.total_tokens for p in points) == 77
    assert run_points([], MODELS, max_points=3) == []


def test_run_costs_name_each_run() -> None:
    [paid, free] = run_costs(
        [record(T0, completion=1000), record(T0 + 1, model="paid/free", prompt=3)], MODELS
    )
    assert (paid.run_id, paid.total_tokens, paid.cost_usd, paid.priced) == (
        f"r{T0}",
        1000,
        0.008,
        True,
    )
    assert (free.model, free.total_tokens, free.cost_usd, free.priced) == ("paid/free", 3, 0, False)
