"""A turn's history read alone, by session length: the full read against the cached tail.

`.venv/bin/python bench/history_read.py [--lengths 200,1000,5000] [--limit 201]` starts
its own nats-server (loopback, memory stream), fills one session per length, then times
`limit` messages read back the pre-cache way (`consume_all`, what every turn did) and
through `TranscriptCache` after each turn's 2 new messages: wall time p50 and CPU
milliseconds per read of this process and of nats-server (/proc/<pid>/stat), medians of
the rounds. Not part of `python -m bench` (not a docs/quality.md goal): docs/runtime.md.
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
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aisopod.bus import Bus  # noqa: E402
from aisopod.settings import nats_servers  # noqa: E402
from aisopod.subjects import Subjects  # noqa: E402
from aisopod_runtime.kvview import consume_all  # noqa: E402
from aisopod_runtime.transcripts import TranscriptStore, new_message  # noqa: E402
from bench.http_proxy import free_port  # noqa: E402

ROUNDS = 40


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def measure(store: TranscriptStore, key: str, limit: int, server: int, cached: bool):
    walls, mine, theirs = [], [], []
    for n in range(ROUNDS):
        # A turn's writes: the question and the answer.
        await store.append(key, new_message("user", f"q{n}"))
        await store.append(key, new_message("assistant", f"a{n}"))
        c0, s0, t0 = cpu_ms(os.getpid()), cpu_ms(server), time.perf_counter()
        if cached:
            got = await store.read(key, limit)
        else:
            msgs = await consume_all(store.bus.js, store.stream, store.subject(key), limit=limit)
            got = [m.data for m in msgs]
        walls.append((time.perf_counter() - t0) * 1000)
        mine.append(cpu_ms(os.getpid()) - c0)
        theirs.append(cpu_ms(server) - s0)
        assert len(got) == limit
    # CPU ticks are 10 ms: the mean over the rounds, not the median, is what they resolve.
    return (
        round(statistics.median(walls), 2),
        round(statistics.fmean(mine), 2),
        round(statistics.fmean(theirs), 2),
    )


async def quiet(exc: Exception) -> None:
    """Refused connections while the server starts are expected: no traceback."""


async def main(url: str, server: int, lengths: list[int], limit: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            nc = await nats.connect(nats_servers(url), allow_reconnect=False, error_cb=quiet)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    store = TranscriptStore(Bus(nc, Subjects("bench")))
    await nc.jetstream().add_stream(
        StreamConfig(name=store.stream, subjects=["bench.transcript.>"], storage=StorageType.FILE)
    )
    print("length | full read: wall p50 ms, CPU ms client/nats | cached: same")
    for length in lengths:
        key = f"agent:main:len{length}"
        for i in range(length):
            await store.append(key, new_message("user", f"message {i} " * 8))
        full = await measure(store, key, limit, server, cached=False)
        await store.read(key, limit)  # the first read of a process fills the tail
        cached = await measure(store, key, limit, server, cached=True)
        print(f"{length} | {full} | {cached}")
    await nc.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", default="200,1000,5000")
    parser.add_argument("--limit", type=int, default=201)
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
            lengths = [int(n) for n in args.lengths.split(",")]
            asyncio.run(main(f"nats://127.0.0.1:{port}", proc.pid, lengths, args.limit))
        finally:
            proc.terminate()
            proc.wait(10)
