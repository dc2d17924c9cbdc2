"""What a usage read costs, by the number of runs in the window (docs/runtime.md, "Usage,
cost and budgets": whole hours come from hourly roll-ups).

`.venv/bin/python bench/usage_read.py [--runs 1000,10000,50000]` starts its own
nats-server (loopback, file stream and bucket), fills stream USAGE with that many run
records spread over 30 days (20 agents, 500 sessions, 4 models, two of them priced), then
times, 5 rounds each, the read of the whole window plus what `usage.status` and
`usage.cost` add up (without the network hop): from the records (what every read cost
before roll-ups, and still costs when none can be used), the first read after an upgrade
(no roll-ups yet: it folds the window's hours and writes them), the first read of a
process (cold: it reads the bucket once), a read after that (warm), one agent (warm),
and one session (always the records): wall p50 and CPU ms of this process and of
nats-server. Not part of `python -m bench` (not a docs/quality.md goal).

`--sessions` times `usage.sessions` instead, as OpenClaw's usage page asks it (`limit`
1000: a row per session, with its quarter-hour cells, and every cell of the window),
without the network hop and the reply's encoding: from the records (what it cost before
session roll-ups, and still costs when a price changed to one the roll-ups cannot
reproduce), the first read after an upgrade (folds the session roll-ups), cold, warm,
one agent (warm), one session (warm). `--session-count N` and `--agent-count N` spread
the runs over that many sessions (500) and agents (20) instead: fewer give several runs
per session and quarter hour, as a busy assistant has.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aisopod import codec  # noqa: E402
from aisopod.bus import Bus  # noqa: E402
from aisopod.config.sections.providers import ProvidersSection  # noqa: E402
from aisopod.settings import nats_servers  # noqa: E402
from aisopod.subjects import Subjects  # noqa: E402
from aisopod_runtime.usage.ledger import UsageLedger  # noqa: E402
from aisopod_runtime.usage.tally import (  # noqa: E402
    costs,
    per_session,
    price_of,
    series,
    session_rows,
    summary_fields,
)
from bench.http_proxy import free_port  # noqa: E402

ROUNDS = 5
PAGE_LIMIT = 1000
SESSION_COUNT = [500]
AGENT_COUNT = [20]
DAY_MS = 86_400_000
WINDOW_MS = 30 * DAY_MS
MODELS = ProvidersSection.model_validate(
    {
        "providers": [
            {
                "id": "openai",
                "baseUrl": "http://127.0.0.1:9/v1",
                "models": [
                    {"id": "model-0", "cost": {"input": 2.5, "output": 10.0, "cacheRead": 1.25}},
                    {"id": "model-1", "cost": {"input": 0.15, "output": 0.6}},
                ],
            }
        ]
    }
)


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def record(n: int, now: int, total: int) -> dict[str, Any]:
    agent = f"agent{n % AGENT_COUNT[0]}"
    return {
        "runId": f"run{total}-{n}",
        "ts": now - WINDOW_MS + int(n * WINDOW_MS / total),
        "sessionKey": f"agent:{agent}:s{n % SESSION_COUNT[0]}",
        "agentId": agent,
        "model": f"openai/model-{n % 4}",
        "provider": "openai",
        "principal": "admin",
        "status": "ok",
        "calls": 1,
        "promptTokens": 900 + n % 300,
        "completionTokens": 120 + n % 50,
        "cacheReadTokens": 512,
        "cacheWriteTokens": 0,
        "costNanoUsd": 250_000,
    }


async def timed(
    server: int,
    read: Callable[[], Awaitable[int]],
    before: Callable[[], Awaitable[None]] | None = None,
) -> tuple[float, float, float, int]:
    walls, mine, theirs = [], [], []
    count = 0
    for _ in range(ROUNDS):
        if before is not None:
            await before()
        c0, s0, t0 = cpu_ms(os.getpid()), cpu_ms(server), time.perf_counter()
        count = await read()
        walls.append((time.perf_counter() - t0) * 1000)
        mine.append(cpu_ms(os.getpid()) - c0)
        theirs.append(cpu_ms(server) - s0)
    return (
        round(statistics.median(walls), 1),
        round(statistics.fmean(mine), 1),
        round(statistics.fmean(theirs), 1),
        count,
    )


async def quiet(exc: Exception) -> None:
    """Refused connections while the server starts are expected: no traceback."""


def ledger_of(bus: Bus) -> UsageLedger:
    ledger = UsageLedger(bus)
    ledger.price_of = lambda ref: price_of(MODELS, ref)
    return ledger


async def measure_size(
    nc: Any, server: int, index: int, size: int, sessions: bool
) -> list[tuple[float, float, float, int]]:
    bus = Bus(nc, Subjects(f"bench{index}"))
    ledger = ledger_of(bus)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=ledger.stream,
            subjects=[f"bench{index}.usage.>"],
            storage=StorageType.FILE,
            allow_direct=True,
        )
    )
    hours = KeyValueConfig(bucket=ledger.hours_bucket, storage=StorageType.FILE)
    await js.create_key_value(hours)
    now = int(time.time() * 1000)
    for start in range(0, size, 1000):
        acks = [
            await js.publish_async(
                bus.subjects.usage(r["agentId"], r["sessionKey"]), codec.dumps(r)
            )
            for r in (record(n, now, size) for n in range(start, min(start + 1000, size)))
        ]
        await asyncio.gather(*acks)
    since, until = now - WINDOW_MS, now + 1

    def add_up(items: list[dict[str, Any]]) -> int:
        summary_fields(items, since, until)
        series(items, since, until, "day")
        costs(items, MODELS, since, until, "day")
        return len(items)

    async def records() -> int:
        return add_up(await ledger.read_records(since, until))

    async def no_rollups() -> None:
        await js.delete_key_value(ledger.hours_bucket)
        await js.create_key_value(hours)

    async def cold() -> int:
        return add_up(await ledger_of(bus).read(since, until, bucket="day"))

    async def warm() -> int:
        return add_up(await ledger.read(since, until, bucket="day"))

    async def agent() -> int:
        return add_up(await ledger.read(since, until, agent_id="agent3", bucket="day"))

    async def session() -> int:
        key = "agent:agent3:s3"
        return add_up(await ledger.read_records(since, until, agent_id="agent3", session_key=key))

    if sessions:
        return await measure_sessions(bus, js, hours, server, since, until)
    return [
        await timed(server, records),
        await timed(server, cold, before=no_rollups),  # the first read after an upgrade
        await timed(server, cold),
        await timed(server, warm),
        await timed(server, agent),
        await timed(server, session),
    ]


async def measure_sessions(
    bus: Bus, js: Any, hours: KeyValueConfig, server: int, since: int, until: int
) -> list[tuple[float, float, float, int]]:
    ledger = ledger_of(bus)
    key = "agent:agent1:s1"  # there with any counts

    async def records() -> int:
        answer = per_session(
            await ledger.read_records(since, until), MODELS, since, until, PAGE_LIMIT
        )
        return len(answer.cells)

    async def rolled(
        on: UsageLedger, agent_id: str | None = None, session_key: str | None = None
    ) -> int:
        read = await on.read_sessions(since, until, agent_id=agent_id, session_key=session_key)
        answer = session_rows(
            read.spans, read.entries_of, read.everything, MODELS, since, until, PAGE_LIMIT
        )
        return len(answer.cells)

    async def no_rollups() -> None:
        await js.delete_key_value(ledger.hours_bucket)
        await js.create_key_value(hours)

    return [
        await timed(server, records),
        await timed(server, lambda: rolled(ledger_of(bus)), before=no_rollups),
        await timed(server, lambda: rolled(ledger_of(bus))),
        await timed(server, lambda: rolled(ledger)),
        await timed(server, lambda: rolled(ledger, "agent1")),
        await timed(server, lambda: rolled(ledger, "agent1", key)),
    ]


async def main(url: str, server: int, sizes: list[int], sessions: bool) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            nc = await nats.connect(nats_servers(url), allow_reconnect=False, error_cb=quiet)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    print(f"load average {os.getloadavg()[0]:.1f}")
    if sessions:
        print(
            "runs | usage.sessions from the records, wall p50 ms; CPU ms client/nats"
            " (cells in the answer) | first read after an upgrade (folds) | cold | warm"
            " | warm: one agent | warm: one session"
        )
    else:
        print(
            "runs | records: whole window + totals + cost, wall p50 ms; CPU ms client/nats"
            " (entries added up) | first read after an upgrade (folds) | cold | warm"
            " | warm: one agent | one session (records)"
        )
    for index, size in enumerate(sizes):
        figures = await measure_size(nc, server, index, size, sessions)
        unit = "cells" if sessions else "records"
        print(
            f"{size} | " + " | ".join(f"{w} ms; {c} / {s} ({n} {unit})" for w, c, s, n in figures)
        )
    print(f"load average {os.getloadavg()[0]:.1f}")
    await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="1000,10000,50000")
    parser.add_argument("--sessions", action="store_true", help="time usage.sessions")
    parser.add_argument("--session-count", type=int, default=500)
    parser.add_argument("--agent-count", type=int, default=20)
    args = parser.parse_args()
    SESSION_COUNT[0] = args.session_count
    AGENT_COUNT[0] = args.agent_count
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        conf = Path(state) / "nats.conf"
        conf.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{state}" }}\n')
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "nats-server"), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            sizes = [int(n) for n in args.runs.split(",")]
            asyncio.run(main(f"nats://127.0.0.1:{port}", proc.pid, sizes, args.sessions))
        finally:
            proc.terminate()
            proc.wait(10)
