"""P3, the WebSocket handshake, A/B in one run (docs/ws-gateway.md, "P3").

    .venv/bin/python -m bench.handshake_ab [--rounds 4] [--count 200] [--before REV]
        [--off credential|exempt]

Local stacks side by side: `old` with one of ws-gateway's caches off, `new` with it on (the
default): `--off credential` (the default) the verified-credential cache
(`AISOPOD_CREDENTIAL_CACHE_TTL_S=0`: every `connect` asks auth, as before the cache),
`--off exempt` the kept exempt verdicts of the connection limit
(`AISOPOD_EXEMPT_CACHE_MAX_AGE_S=0`: every upgrade asks `ratelimit.edge`; the stacks exempt
loopback). With `--before REV` a third, `before`, running that
revision's Python sources (as bench/turn_ab.py does). Blocks of `count` sequential
handshakes (TCP connect → upgrade through Traefik → challenge → `connect` → `hello`, admin
token) alternate between them, `rounds` times, so all see the same load. Per block: wall
p50/p99 and phases seen by the client (101 received, challenge received, hello received),
and CPU per handshake of each process of the path (its threads' time on a CPU,
`cpu_seconds`). The load average is printed with every block and written to the results
file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import median_per_process, progress, shared_once, write_ab_result
from bench.local_stack import BenchStack
from bench.turn_ab import export_sources
from bench.ws_lean_client import LeanClient, connect_frame, upgrade_request

PATH_PROCESSES = ("traefik", "ws-gateway", "auth", "ratelimit", "nats")
CACHE_ENVS = {
    "credential": "AISOPOD_CREDENTIAL_CACHE_TTL_S",
    "exempt": "AISOPOD_EXEMPT_CACHE_MAX_AGE_S",
}


def cpu_seconds(pid: int) -> float:
    """Time on a CPU of every thread of `pid`, from the scheduler's nanosecond counters
    (/proc/<pid>/task/*/schedstat): utime+stime in /proc/<pid>/stat counts whole clock
    ticks (10 ms), 50 µs per handshake in a block of 200. A thread that ended between two
    reads drops out of the second (the processes measured keep theirs); without schedstat,
    the tick counters."""
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Side:
    def __init__(self, name: str, stack: BenchStack) -> None:
        self.name = name
        self.stack = stack
        url = str(stack.info["ws_url"])
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.pids = shared_once(stack.pids, PATH_PROCESSES)  # auth+ratelimit once

    def cpu(self) -> dict[str, float]:
        return {n: sum(cpu_seconds(p) for p in group) for n, group in self.pids.items()}

    async def handshake(self) -> tuple[float, float, float, float]:
        """Seconds from the start to: 101, challenge, hello; and the total."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        _, client = await loop.create_connection(LeanClient, self.host, self.port)
        assert client.transport is not None
        client.transport.write(upgrade_request(self.host, self.port))
        await asyncio.wait_for(client.upgraded, 10)
        upgraded = time.perf_counter()
        challenge = await client.recv()
        challenged = time.perf_counter()
        assert challenge["method"] == "connect.challenge", challenge
        client.send(connect_frame(self.stack.token))
        hello = await client.recv()
        done = time.perf_counter()
        if "result" not in hello:
            raise RuntimeError(f"handshake failed: {hello}")
        client.close()
        return upgraded - start, challenged - start, done - start, done - start

    async def block(self, count: int) -> dict[str, Any]:
        before = self.cpu()
        samples: list[tuple[float, float, float, float]] = []
        for _ in range(count):
            samples.append(await self.handshake())
        after = self.cpu()
        total = [s[3] for s in samples]
        return {
            "side": self.name,
            "load": load(),
            "p50_ms": round(statistics.median(total) * 1000, 3),
            "p99_ms": round(pct(total, 0.99) * 1000, 3),
            "upgrade_101_p50_ms": round(statistics.median(s[0] for s in samples) * 1000, 3),
            "challenge_p50_ms": round(statistics.median(s[1] for s in samples) * 1000, 3),
            "connect_to_hello_p50_ms": round(
                statistics.median(s[2] - s[1] for s in samples) * 1000, 3
            ),
            "cpu_us_per_handshake": {
                n: round((after[n] - before[n]) / count * 1e6) for n in before
            },
        }


async def run(sides: list[Side], rounds: int, count: int) -> list[dict[str, Any]]:
    for side in sides:  # warm up: imports, first NATS subscriptions, cache
        for _ in range(20):
            await side.handshake()
    blocks = []
    for r in range(rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]  # each side leads in turn
        for side in order:
            result = await side.block(count)
            progress(json.dumps(result))
            blocks.append(result)
    return blocks


def summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in sorted({b["side"] for b in blocks}):
        mine = [b for b in blocks if b["side"] == name]
        out[name] = {
            "p50_ms": [b["p50_ms"] for b in mine],
            "p99_ms": [b["p99_ms"] for b in mine],
            "median_p50_ms": statistics.median(b["p50_ms"] for b in mine),
            "cpu_us_median": median_per_process(mine, "cpu_us_per_handshake"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--only", choices=("old", "new"), default=None)
    parser.add_argument("--before", default=None, help="a git revision to run as a third side")
    parser.add_argument("--hold", action="store_true", help="loop handshakes until killed")
    parser.add_argument(
        "--off", choices=sorted(CACHE_ENVS), default="credential", help="the cache `old` lacks"
    )
    parser.add_argument("--out", default=None, help="results file stem in bench/results")
    args = parser.parse_args()
    # A SIGTERM (`timeout`, the end of a --hold profile) still stops the stacks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stacks: list[Side] = []
    tmp = tempfile.TemporaryDirectory(prefix="handshake-ab-")
    try:
        if args.before:
            os.environ["PYTHONPATH"] = export_sources(args.before, Path(tmp.name))
            stacks.append(Side("before", BenchStack.start(with_fake=False)))
            os.environ.pop("PYTHONPATH", None)
        cache_env = CACHE_ENVS[args.off]
        for name, ttl in (("old", "0"), ("new", None)):
            if args.only and args.only != name:
                continue
            if ttl is None:
                os.environ.pop(cache_env, None)
            else:
                os.environ[cache_env] = ttl
            stacks.append(Side(name, BenchStack.start(with_fake=False)))
        os.environ.pop(cache_env, None)
        if args.hold:
            progress(f"ws-gateway pids: {stacks[0].pids.get('ws-gateway')}")

            async def forever() -> None:
                while True:
                    await stacks[0].handshake()

            asyncio.run(forever())
            return
        load_before = load()
        blocks = asyncio.run(run(stacks, args.rounds, args.count))
        result = {
            "off": args.off,
            "load_before": load_before,
            "load_after": load(),
            "blocks": blocks,
            "summary": summary(blocks),
        }
        write_ab_result(result, args.out)
    finally:
        for side in stacks:
            side.stack.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
