"""Session roll-ups (no I/O): `usage.sessions` answered from the roll-ups of a window's sealed
hours plus the records of its edges is exactly the answer adding up the records gives —
rows, order, limit, spans, totals, cells, costs and their parts, session count — for any
agent or session, at the folding price and at another, with hours split into parts."""

from __future__ import annotations

import functools
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from aisopod.catalogue.usage import QUARTER_MS
from aisopod.config.sections.providers import ProvidersSection
from aisopod_runtime.usage import session_rollup
from aisopod_runtime.usage.rollup import HOUR_MS, HourRollup, StaleRollup
from aisopod_runtime.usage.session_rollup import (
    HourSessions,
    SessionHourPart,
    fold_sessions,
    index,
    sessions_read,
    whole,
)
from aisopod_runtime.usage.tally import cost_nano_usd, per_session, price_of, session_rows

from .conftest import providers

T0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1000)
SPAN_MS = 30 * HOUR_MS

MODELS = providers({"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75})


def ledger(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Records over `SPAN_MS` in about the order of their stamps (concurrent runs swap)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        agent = f"a{rng.randrange(4)}"
        prompt = rng.randrange(0, 5000)
        out.append(
            {
                "runId": f"r{n}",
                "ts": T0 + rng.randrange(SPAN_MS),
                "sessionKey": f"agent:{agent}:s{rng.randrange(60)}",
                "agentId": agent,
                "model": rng.choice(["paid/m1", "paid/m2", "paid/free", "gone/x"]),
                "provider": "paid",
                "calls": rng.randrange(1, 4),
                "promptTokens": prompt,
                "completionTokens": rng.randrange(0, 2000),
                "cacheReadTokens": rng.randrange(0, 3000),
                "cacheWriteTokens": rng.randrange(0, 800),  # read + write may exceed prompt
            }
        )
    out.sort(key=lambda r: r["ts"] + rng.randrange(-3000, 3000))
    return out


def folded(
    records: list[dict[str, Any]], hours: range, models: ProvidersSection
) -> dict[int, list[SessionHourPart]]:
    return fold_sessions(records, hours, "made", lambda ref: price_of(models, ref), cost_nano_usd)


@functools.cache
def folded_ledger() -> dict[int, list[SessionHourPart]]:
    return folded(RECORDS, HOURS, MODELS)


def rolled_answer(
    records: list[dict[str, Any]],
    parts: dict[int, list[SessionHourPart]],
    since: int,
    until: int,
    agent: str | None,
    key: str | None,
    limit: int,
    models: ProvidersSection,
) -> Any:
    """The answer from the roll-ups of the whole hours of `[since, until)` and the records
    of its edges (narrowed as the ledger's subjects narrow them)."""
    start = -(-since // HOUR_MS) * HOUR_MS
    end = until - until % HOUR_MS
    if start >= end:  # no whole hour: the ledger reads the records
        start = end = until

    def edge(lo: int, hi: int) -> list[dict[str, Any]]:
        return [
            r
            for r in records
            if lo <= r["ts"] < hi
            and (agent is None or r["agentId"] == agent)
            and (key is None or r["sessionKey"] == key)
        ]

    hours = [index(h, parts[h]) for h in range(start, end, HOUR_MS)]
    read = sessions_read(edge(since, start), hours, edge(end, until), agent, key)
    return session_rows(read.spans, read.entries_of, read.everything, models, since, until, limit)


def records_answer(
    records: list[dict[str, Any]],
    since: int,
    until: int,
    agent: str | None,
    key: str | None,
    limit: int,
    models: ProvidersSection,
) -> Any:
    kept = [
        r
        for r in records
        if since <= r["ts"] < until
        and (agent is None or r["agentId"] == agent)
        and (key is None or r["sessionKey"] == key)
    ]
    return per_session(kept, models, since, until, limit)


RECORDS = ledger(3000)
HOURS = range(T0 - 2 * HOUR_MS, T0 + SPAN_MS + 2 * HOUR_MS, HOUR_MS)
# Edges mid-hour and mid-quarter at both ends; a window of whole hours; one inside an hour.
WINDOWS = [
    (T0 + 2 * HOUR_MS + 7 * 60_000 + 123, T0 + 27 * HOUR_MS + 41 * 60_000 + 7),
    (T0 + HOUR_MS, T0 + 29 * HOUR_MS),
    (T0 + 5 * HOUR_MS + QUARTER_MS + 1, T0 + 5 * HOUR_MS + 3 * QUARTER_MS - 1),
    (T0 - HOUR_MS, T0 + SPAN_MS + HOUR_MS),
]


@pytest.mark.parametrize("since,until", WINDOWS)
@pytest.mark.parametrize(
    "agent,key,limit",
    [
        (None, None, 50),
        (None, None, 1000),
        (None, None, 1),
        ("a2", None, 7),
        (None, "agent:a1:s5", 50),
        ("a1", "agent:a1:s5", 50),
        ("a3", "agent:a1:s5", 50),  # another agent's session: nothing
    ],
)
def test_the_roll_ups_answer_what_the_records_answer(
    since: int, until: int, agent: str | None, key: str | None, limit: int
) -> None:
    got = rolled_answer(RECORDS, folded_ledger(), since, until, agent, key, limit, MODELS)
    truth = records_answer(RECORDS, since, until, agent, key, limit, MODELS)
    assert got == truth
    if since == WINDOWS[0][0] and agent is None and key is None:
        assert truth.session_count > 200 and len(truth.cells) > 1000


def test_at_another_price_the_answer_is_the_same_or_the_records_are_read() -> None:
    parts = folded_ledger()
    since, until = WINDOWS[0]
    changed = providers({"input": 2.125, "output": 9.5, "cacheRead": 0.212})
    got = rolled_answer(RECORDS, parts, since, until, None, None, 80, changed)
    assert got == records_answer(RECORDS, since, until, None, None, 80, changed)
    assert got.sessions[0].cells[0].cost_usd >= 0
    inexact = providers({"input": 2.1234, "output": 9.5})
    with pytest.raises(StaleRollup):
        rolled_answer(RECORDS, parts, since, until, None, None, 80, inexact)


def test_a_busy_hour_is_split_into_parts_that_read_back_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hour = T0 + 3 * HOUR_MS
    # One session running every model in every quarter, besides the others.
    busy = [
        {
            **RECORDS[0],
            "runId": f"busy{n}",
            "ts": hour + n * 60_000 + 5,
            "sessionKey": "agent:a0:busy",
            "agentId": "a0",
            "model": ["paid/m1", "paid/m2", "paid/free", "gone/x"][n % 4],
        }
        for n in range(60)
    ]
    records = sorted(RECORDS + busy, key=lambda r: r["ts"])
    one_part = folded(records, range(hour, hour + HOUR_MS, HOUR_MS), MODELS)[hour]
    assert len(one_part) == 1
    monkeypatch.setattr(session_rollup, "PART_BYTES", 600)  # a cell or two per part
    parts = folded(records, range(hour, hour + HOUR_MS, HOUR_MS), MODELS)[hour]
    assert len(parts) > 20
    assert all(len(p.model_dump_json()) < 2000 for p in parts)
    assert all(p.parts == len(parts) and p.digest == parts[0].digest for p in parts)
    split = [row[0] for p in parts for row in p.rows]
    assert len(split) > len(set(split))  # some sessions continue in the next part
    assert index(hour, parts) == index(hour, one_part)
    assert whole(reversed(parts), "made") == parts
    assert whole(parts[:-1], "made") is None  # a part missing: not folded
    assert whole(parts, "made again") is None  # another stream's
    other = folded(
        records, range(hour, hour + HOUR_MS, HOUR_MS), providers({"input": 1.0, "output": 2.0})
    )
    assert whole([*parts[:3], *other[hour][3:]], "made") is None  # two folds never mix


def test_folds_ignore_other_hours_and_empty_hours_read_empty() -> None:
    empty = T0 - 5 * HOUR_MS
    parts = folded(RECORDS, range(empty, empty + 2 * HOUR_MS, HOUR_MS), MODELS)
    assert [len(p) for p in parts.values()] == [1, 1]
    assert index(empty, parts[empty]) == HourSessions(empty)
    shuffled = list(RECORDS)
    random.Random(3).shuffle(shuffled)
    assert folded(shuffled, HOURS, MODELS) == folded(RECORDS, HOURS, MODELS)


def test_values_of_either_kind_are_never_read_as_the_other() -> None:
    """Both live in KV `usage_hours`: a runtime of the previous version lists every key."""
    hour = T0 + HOUR_MS
    part = folded(RECORDS, range(hour, hour + HOUR_MS, HOUR_MS), MODELS)[hour][0]
    with pytest.raises(ValueError):
        HourRollup.model_validate_json(part.model_dump_json())
    with pytest.raises(ValueError):
        SessionHourPart.model_validate_json(
            HourRollup(hour=hour, made="m", cells=[]).model_dump_json()
        )
