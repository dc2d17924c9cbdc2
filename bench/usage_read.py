"""What a usage read costs, by the number of runs in the window (docs/runtime.md, "Usage,
cost and budgets": reads are O(runs in the window)).

`.venv/bin/python bench/usage_read.py [--runs 1000,10000,50000]` starts its own
nats-server (loopback, file stream), fills stream USAGE with that many run records spread
over 30 days (20 agents, 500 sessions, 4 models), then times, 5 rounds each, the ledger
read of the whole window plus the totals (`usage.status` without the network hop) by a
fresh process view (cold: the first read after a start) and by a view that read before
(warm: it only asks the stream what is new), the read of one agent (warm), and of one
session (always the stream): wall p50 and CPU ms of this process and of nats-server. Not
part of `python -m bench` (not a docs/quality.md goal).
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
from nats.js.api import StorageType, StreamConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aisopod import codec  # noqa: E402
from aisopod.bus import Bus  # noqa: E402
from aisopod.settings import nats_servers  # noqa: E402
from aisopod.subjects import Subjects  # noqa: E402
from aisopod_runtime.usage.ledger import UsageLedger  # noqa: E402
from aisopod_runtime.usage.tally import series, summary_fields  # noqa: E402
from bench.http_proxy import free_port  # noqa: E402

ROUNDS = 5
DAY_MS = 86_400_000
WINDOW_MS = 30 * DAY_MS


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def record(n: int, now: int, total: int) -> dict[str, Any]:
    agent = f"agent{n % 20}"
    return {
        "runId": f"run{total}-{n}",
        "ts": now - WINDOW_MS + int(n * WINDOW_MS / total),
        "sessionKey": f"agent:{agent}:s{n % 500}",
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


async def timed(server: int, read: Callable[[], Awaitable[int]]) -> tuple[float, float, float, int]:
    walls, mine, theirs = [], [], []
    count = 0
    for _ in range(ROUNDS):
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


async def measure_size(
    nc: Any, server: int, index: int, size: int
) -> list[tuple[float, float, float, int]]:
    bus = Bus(nc, Subjects(f"bench{index}"))
    ledger = UsageLedger(bus)
    await nc.jetstream().add_stream(
        StreamConfig(
            name=ledger.stream,
            subjects=[f"bench{index}.usage.>"],
            storage=StorageType.FILE,
            allow_direct=True,
        )
    )
    now = int(time.time() * 1000)
    js = nc.jetstream()
    for start in range(0, size, 1000):
        acks = [
            await js.publish_async(
                bus.subjects.usage(r["agentId"], r["sessionKey"]), codec.dumps(r)
            )
            for r in (record(n, now, size) for n in range(start, min(start + 1000, size)))
        ]
        await asyncio.gather(*acks)
    since, until = now - WINDOW_MS, now + 1

    async def cold() -> int:
        records = await UsageLedger(bus).read(since, until)
        summary_fields(records, since, until)
        series(records, since, until, "day")
        return len(records)

    async def whole() -> int:
        records = await ledger.read(since, until)
        summary_fields(records, since, until)
        series(records, since, until, "day")
        return len(records)

    async def agent() -> int:
        return len(await ledger.read(since, until, agent_id="agent3"))

    async def session() -> int:
        key = "agent:agent3:s3"
        return len(await ledger.read(since, until, agent_id="agent3", session_key=key))

    return [await timed(server, read) for read in (cold, whole, agent, session)]


async def main(url: str, server: int, sizes: list[int]) -> None:
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
    print(
        "runs | cold: whole window + totals, wall p50 ms; CPU ms client/nats | warm: the same"
        " | warm: one agent | one session"
    )
    for index, size in enumerate(sizes):
        figures = await measure_size(nc, server, index, size)
        print(
            f"{size} | " + " | ".join(f"{w} ms; {c} / {s} ({n} records)" for w, c, s, n in figures)
        )
    await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="1000,10000,50000")
    args = parser.parse_args()
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
            asyncio.run(main(f"nats://127.0.0.1:{port}", proc.pid, sizes))
        finally:
            proc.terminate()
            proc.wait(10)
