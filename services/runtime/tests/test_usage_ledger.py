"""The usage ledger answers from hourly roll-ups exactly what adding its records up gives:
on either of two replicas folding at once, after an upgrade (records, no roll-ups), after
a fold cut short by a restart, as records arrive, and after the stream was made again."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from aisopod.bus import Bus
from aisopod.catalogue.usage import Bucket
from aisopod.config.sections.providers import ProvidersSection
from aisopod.jsread import live_keys
from aisopod.subjects import Subjects
from aisopod_runtime.usage.budgets import BudgetBook, counter_key
from aisopod_runtime.usage.ledger import UsageLedger, shared_ledger
from aisopod_runtime.usage.rollup import HOUR_MS, SEAL_MS, HourRollup
from aisopod_runtime.usage.tally import (
    cost_nano_usd,
    costs,
    month_end,
    month_of,
    per_session,
    price_of,
    series,
    session_rows,
    summary_fields,
    totals,
)

DAY_MS = 86_400_000
MODELS = ProvidersSection.model_validate(
    {
        "providers": [
            {
                "id": "p",
                "kind": "openai",
                "baseUrl": "http://127.0.0.1:9/v1",
                "models": [
                    {"id": "m", "cost": {"input": 3.0, "output": 15.0, "cacheRead": 0.3}},
                    {"id": "n", "cost": {"input": 0.0375, "output": 0.15}},
                ],
            }
        ]
    }
)


def ledger_on(nc: Client, prefix: str) -> UsageLedger:
    ledger = UsageLedger(Bus(nc, Subjects(prefix)))
    ledger.price_of = lambda ref: price_of(MODELS, ref)
    return ledger


@pytest.fixture
async def ledgers(nats_url: str) -> AsyncIterator[tuple[UsageLedger, UsageLedger]]:
    prefix = f"u{uuid.uuid4().hex[:10]}"
    clients: list[Client] = [await nats.connect(nats_url), await nats.connect(nats_url)]
    one, two = (ledger_on(nc, prefix) for nc in clients)
    js = clients[0].jetstream()
    await js.add_stream(
        StreamConfig(name=one.stream, subjects=[f"{prefix}.usage.>"], storage=StorageType.MEMORY)
    )
    await js.create_key_value(KeyValueConfig(bucket=one.hours_bucket, storage=StorageType.MEMORY))
    yield one, two
    for nc in clients:
        await nc.close()


def record(rng: random.Random, ts: int) -> dict[str, Any]:
    agent = rng.choice(["a", "b", "c"])
    return {
        "runId": f"r{uuid.uuid4().hex[:12]}",
        "ts": ts,
        "sessionKey": f"agent:{agent}:s{rng.randrange(4)}",
        "agentId": agent,
        "model": rng.choice(["p/m", "p/n", "q/free"]),
        "provider": "p",
        "calls": rng.randrange(1, 3),
        "promptTokens": rng.randrange(5000),
        "completionTokens": rng.randrange(900),
        "cacheReadTokens": rng.randrange(2000),
        "cacheWriteTokens": rng.randrange(100),
    }


async def fill(ledger: UsageLedger, start: int, end: int, count: int, seed: int = 1) -> None:
    """`count` records stamped in `[start, end)`, appended in the order of their stamps."""
    rng = random.Random(seed)
    stamps = sorted(rng.randrange(start, end) for _ in range(count))
    await asyncio.gather(*(ledger.append(record(rng, ts)) for ts in stamps[: count // 2]))
    await asyncio.gather(*(ledger.append(record(rng, ts)) for ts in stamps[count // 2 :]))


def answers(items: list[dict[str, Any]], since: int, until: int, bucket: Bucket) -> Any:
    priced = costs(items, MODELS, since, until, bucket)
    fields = summary_fields(items, since, until)
    return (
        fields["totals"],
        fields["by_provider"],
        fields["by_model"],
        fields["by_agent"],
        series(items, since, until, bucket),
        priced.total_nano,
        priced.by_model,
        priced.by_agent,
        priced.series,
        priced.unpriced,
    )


async def check(
    ledger: UsageLedger, since: int, until: int, agent: str | None = None, bucket: Bucket = "day"
) -> int:
    """The roll-up read's answer equals the records' (cost, tokens, counts, series)."""
    got = await ledger.read(since, until, agent_id=agent, bucket=bucket)
    truth = await ledger.read_records(since, until, agent_id=agent)
    assert answers(got, since, until, bucket) == answers(truth, since, until, bucket)
    return len(truth)


def counting_folds(
    monkeypatch: pytest.MonkeyPatch, store_of: Callable[[UsageLedger], Any]
) -> list[int]:
    """The hours every ledger folds from now on into its roll-ups `store_of` picks."""
    folded: list[int] = []
    real_fold = UsageLedger._fold

    async def counting_fold(
        self: UsageLedger, store: Any, kv: Any, info: Any, hours: list[int], made: str
    ) -> None:
        if store is store_of(self):
            folded.extend(hours)
        await real_fold(self, store, kv, info, hours, made)

    monkeypatch.setattr(UsageLedger, "_fold", counting_fold)
    return folded


async def stored_hours(ledger: UsageLedger) -> dict[str, HourRollup]:
    kv = await ledger.bus.js.key_value(ledger.hours_bucket)
    out = {}
    for key in await live_keys(kv):
        entry = await kv.get(key)
        out[key] = HourRollup.model_validate_json(entry.value or b"")
    return out


async def test_two_replicas_fold_at_once_and_answer_exactly(ledgers) -> None:
    one, two = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - 3 * DAY_MS, now, 600)
    since, until = now - 30 * DAY_MS, now + 1
    # An upgrade: records, no roll-ups. Both replicas fold the same hours at once.
    first, second = await asyncio.gather(
        one.read(since, until, bucket="day"), two.read(since, until, bucket="day")
    )
    truth = await one.read_records(since, until)
    assert len(truth) == 600
    assert answers(first, since, until, "day") == answers(truth, since, until, "day")
    assert answers(second, since, until, "day") == answers(truth, since, until, "day")
    assert len(first) < len(truth) / 2
    # Every sealed whole hour from the first record's on is stored, empty ones too; the
    # hours before it hold nothing without a key.
    hours = await stored_hours(one)
    first = min(r["ts"] for r in truth) - 60_000
    assert sorted(map(int, hours)) == [
        h
        for h in range(since - since % HOUR_MS + HOUR_MS, now, HOUR_MS)
        if first < h + HOUR_MS and h + HOUR_MS + SEAL_MS <= now
    ]
    # Windows with partial hours at both ends, one agent, hour buckets.
    assert await check(one, now - 2 * DAY_MS + 12_345, now - 3 * HOUR_MS - 999, bucket="hour")
    assert await check(two, now - 3 * DAY_MS, now + 1, agent="b")
    # New runs are in the next read, through the part not sealed yet.
    await fill(two, now + 1, now + 50, 7, seed=2)
    assert await check(one, since, now + 60) == 607


async def test_a_fold_cut_short_is_done_again_and_nothing_counts_twice(ledgers) -> None:
    one, two = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - 2 * DAY_MS, now, 300)
    since, until = now - 2 * DAY_MS - 5, now + 1
    assert await check(one, since, until) == 300
    # A runtime stopped mid-fold left some hours written and others not.
    kv = await one.bus.js.key_value(one.hours_bucket)
    keys = sorted(await live_keys(kv), key=int)
    for key in keys[::3]:
        await kv.delete(key)
    # A restarted runtime (a fresh process: nothing in memory) folds the rest, once.
    restarted = ledger_on(two.bus.nc, two.bus.subjects.prefix)
    assert await check(restarted, since, until) == 300
    assert await check(restarted, since, until, agent="a", bucket="hour") > 0
    again = await stored_hours(one)
    assert sorted(again, key=int) == keys
    # The roll-ups written again are what the first fold wrote (a function of the records).
    fresh = ledger_on(one.bus.nc, one.bus.subjects.prefix)
    assert await check(fresh, since, until) == 300
    assert await stored_hours(one) == again


async def test_hours_another_replica_folded_are_read_not_folded_again(ledgers, monkeypatch) -> None:
    one, two = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - DAY_MS, now, 120)
    since, until = now - DAY_MS, now + 1
    assert await check(one, since, until) == 120
    assert await check(two, since, until) == 120
    # Hours sealed since `two` read the bucket, folded meanwhile by `one`.
    newest = sorted(two._hour_rollups.hours)[-3:]
    for hour in newest:
        del two._hour_rollups.hours[hour]
    folded = counting_folds(monkeypatch, lambda ledger: ledger._hour_rollups)
    assert await check(two, since, until) == 120
    assert folded == [] and all(hour in two._hour_rollups.hours for hour in newest)


async def test_budget_counters_equal_what_the_roll_ups_add_up(ledgers) -> None:
    """Budgets keep their own counters (never roll-ups): a month's counters equal the
    roll-up read of the month, at unchanged prices."""
    one, _ = ledgers
    js = one.bus.nc.jetstream()
    book = BudgetBook(
        await js.create_key_value(
            KeyValueConfig(bucket=f"{one.hours_bucket}_budget", storage=StorageType.MEMORY)
        )
    )
    now = int(time.time() * 1000)
    month = month_of(now)
    since = max(now - 3 * DAY_MS, month_end(now) - 31 * DAY_MS)
    while month_of(since) != month:
        since += HOUR_MS
    rng = random.Random(9)
    for ts in sorted(rng.randrange(since, now) for _ in range(150)):
        run = record(rng, ts)
        cost = cost_nano_usd(price_of(MODELS, run["model"]), run)
        await one.append({**run, "costNanoUsd": cost})
        total = run["promptTokens"] + run["completionTokens"]
        await book.add(counter_key(month, "agent", run["agentId"]), run["runId"], total, cost)
    for agent in ("a", "b", "c"):
        spend, _ = await book.spend(counter_key(month, "agent", agent))
        got = await one.read(since, now + 1, agent_id=agent, bucket="day")
        tally = totals(got)
        priced = costs(got, MODELS, since, now + 1, "day")
        assert (spend.tokens, spend.cost_nano, spend.runs) == (
            tally.total,
            priced.total_nano,
            tally.runs,
        )
        assert tally.runs > 0


async def test_a_stream_made_again_voids_its_roll_ups(ledgers) -> None:
    one, _ = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - DAY_MS, now, 100)
    assert await check(one, now - DAY_MS, now + 1) == 100
    js = one.bus.nc.jetstream()
    config = (await js.stream_info(one.stream)).config
    await js.delete_stream(one.stream)
    await js.add_stream(config)
    await fill(one, now - DAY_MS, now, 40, seed=5)
    assert await check(one, now - DAY_MS, now + 1) == 40


async def test_without_the_bucket_the_records_answer(ledgers) -> None:
    one, _ = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - DAY_MS, now, 50)
    await one.bus.nc.jetstream().delete_key_value(one.hours_bucket)
    lone = ledger_on(one.bus.nc, one.bus.subjects.prefix)
    assert await check(lone, now - DAY_MS, now + 1) == 50


async def check_sessions(
    ledger: UsageLedger,
    since: int,
    until: int,
    agent: str | None = None,
    key: str | None = None,
    limit: int = 50,
) -> int:
    """`usage.sessions` from the roll-ups equals the answer from the records."""
    read = await ledger.read_sessions(since, until, agent_id=agent, session_key=key)
    got = session_rows(read.spans, read.entries_of, read.everything, MODELS, since, until, limit)
    records = await ledger.read_records(since, until, agent_id=agent, session_key=key)
    assert got == per_session(records, MODELS, since, until, limit)
    return len(records)


async def stored_session_keys(ledger: UsageLedger) -> dict[str, bytes]:
    kv = await ledger.bus.js.key_value(ledger.hours_bucket)
    keys = await live_keys(kv, "sessions.>")
    return {k: (await kv.get(k)).value or b"" for k in keys}


async def test_usage_sessions_from_session_roll_ups_equal_the_records(ledgers, monkeypatch) -> None:
    one, two = ledgers
    now = int(time.time() * 1000)
    await fill(one, now - 3 * DAY_MS, now, 600)
    since, until = now - 30 * DAY_MS, now + 1
    # An upgrade: records, no session roll-ups. Both replicas fold the same hours at once.
    counts = await asyncio.gather(
        check_sessions(one, since, until), check_sessions(two, since, until, limit=3)
    )
    assert counts == [600, 600]
    stored = await stored_session_keys(one)
    assert len(stored) > 60 and all(k.endswith(".0") for k in stored)
    # The hourly roll-ups, in the same bucket, are read past the session ones.
    assert await check(ledger_on(one.bus.nc, one.bus.subjects.prefix), since, until) == 600
    # Partial hours and quarters at both ends, one agent, one session, a short limit.
    assert await check_sessions(one, now - 2 * DAY_MS + 12_345, now - 3 * HOUR_MS - 999) > 0
    assert await check_sessions(two, now - 3 * DAY_MS, now + 1, agent="b", limit=2) > 0
    assert await check_sessions(one, since, until, agent="a", key="agent:a:s1") > 0
    assert await check_sessions(one, since, until, agent="b", key="agent:a:s1") == 0
    # A runtime stopped mid-fold left some hours written and others not; a restarted one
    # reads the rest from the bucket (never folding those again) and folds the missing.
    kv = await one.bus.js.key_value(one.hours_bucket)
    gone = sorted(stored)[::4]
    for key in gone:
        await kv.delete(key)
    folded = counting_folds(monkeypatch, lambda ledger: ledger._session_rollups)
    restarted = ledger_on(two.bus.nc, two.bus.subjects.prefix)
    assert await check_sessions(restarted, since, until) == 600
    # (and any hour sealed meanwhile: the clock may pass an hour's seal during the test)
    refolded = {f"sessions.{h}.0" for h in folded}
    assert sorted(refolded & stored.keys()) == gone
    assert all(
        int(k.split(".")[1]) > max(int(s.split(".")[1]) for s in stored)
        for k in refolded - stored.keys()
    )
    # What was folded again is what the first fold wrote (a function of the records).
    again = await stored_session_keys(one)
    assert {k: v for k, v in again.items() if k in stored} == stored
    # New runs are in the next read, through the part not sealed yet.
    await fill(two, now + 1, now + 50, 7, seed=2)
    assert await check_sessions(one, since, now + 60) == 607


def test_one_ledger_per_bus(ledgers) -> None:
    one, two = ledgers
    assert shared_ledger(one.bus) is shared_ledger(one.bus)
    assert shared_ledger(one.bus) is not shared_ledger(two.bus)
