"""P6/P7's `/v1` calls with and without http-api's kept exempt verdicts, A/B in one run
(docs/http-api.md, "Exempt addresses").

    .venv/bin/python -m bench.http_exempt_ab [--rounds 4] [--count 200] [--out STEM]

Two local stacks side by side (loopback exempt, as every bench stack): `old` with
`AISOPOD_EXEMPT_CACHE_MAX_AGE_S=0` (every API request asks `ratelimit.edge`, as before the
cache), `new` with the default. Blocks of `count` sequential (c=1) calls alternate between
them, `rounds` times, each side leading in turn, so both see the same load. A block is one
of: `proxy` (non-streamed `POST /v1/chat/completions` to the fake upstream) straight to one
http-api replica with the edge proof, the same `via-traefik`, and `agent` (`model:
aisopod/main`, the echo provider, P7's `/v1` turn) straight to the replica. Per block: wall
p50/p99 and CPU per call of each process of the path (utime+stime from /proc): http-api
(the replica asked), ratelimit, nats-server, auth, Traefik, runtime. The load average is
written with every block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import time
from typing import Any

import httpx

from bench.handshake_ab import cpu_seconds, load, pct
from bench.harness import median_per_process, progress, shared_once, write_ab_result
from bench.local_stack import BenchStack

CACHE_ENV = "AISOPOD_EXEMPT_CACHE_MAX_AGE_S"
KINDS = ("proxy", "via-traefik", "agent")


class Side:
    def __init__(self, name: str, stack: BenchStack) -> None:
        self.name = name
        self.stack = stack
        secret = (stack.state_dir / "secrets" / "edge-secret").read_text().strip()
        token = {"authorization": f"Bearer {stack.token}"}
        self.replica = stack.backend_urls("http-api")[0]
        self.direct = {**token, "x-aisopod-edge": secret}
        self.token = token
        # Every http-api replica counted (the one not asked directly idles but for Traefik's
        # checks); auth and ratelimit, one process in the local stack, once.
        self.pids = shared_once(
            stack.pids, ("http-api", "ratelimit", "nats", "auth", "traefik", "runtime")
        )
        self.client = httpx.AsyncClient(timeout=30, trust_env=False)

    def cpu(self) -> dict[str, float]:
        return {n: sum(cpu_seconds(p) for p in group) for n, group in self.pids.items() if group}

    async def call(self, kind: str) -> float:
        if kind == "via-traefik":
            url, headers = f"{self.stack.info['http_url']}/v1/chat/completions", self.token
        else:
            url, headers = f"{self.replica}/v1/chat/completions", self.direct
        model = "aisopod/main" if kind == "agent" else "fake/fake-small"
        body = {"model": model, "messages": [{"role": "user", "content": "hello bench"}]}
        start = time.perf_counter()
        response = await self.client.post(url, json=body, headers=headers)
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"{kind}: {response.status_code} {response.text[:200]}")
        return elapsed

    async def cached(self) -> float:
        """The replica's `aisopod_http_exempt_cached_total`: shows which side kept verdicts."""
        response = await self.client.get(f"{self.replica}/metrics", headers=self.direct)
        for line in response.text.splitlines():
            name, _, value = line.partition(" ")
            if name == "aisopod_http_exempt_cached_total":
                return float(value)
        return 0.0

    async def block(self, kind: str, count: int) -> dict[str, Any]:
        before = self.cpu()
        samples = [await self.call(kind) for _ in range(count)]
        after = self.cpu()
        return {
            "side": self.name,
            "kind": kind,
            "load": load(),
            "p50_ms": round(statistics.median(samples) * 1000, 3),
            "p99_ms": round(pct(samples, 0.99) * 1000, 3),
            "cpu_us_per_call": {n: round((after[n] - before[n]) / count * 1e6) for n in before},
        }


async def run(sides: list[Side], rounds: int, count: int) -> list[dict[str, Any]]:
    for side in sides:  # warm up: imports, connections, the first verdicts
        for kind in KINDS:
            for _ in range(20):
                await side.call(kind)
    blocks = []
    for r in range(rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]  # each side leads in turn
        for kind in KINDS:
            for side in order:
                result = await side.block(kind, count)
                progress(json.dumps(result))
                blocks.append(result)
    for side in sides:
        progress(f"{side.name}: aisopod_http_exempt_cached_total {await side.cached()}")
        await side.client.aclose()
    return blocks


def summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in KINDS:
        for name in sorted({b["side"] for b in blocks}):
            mine = [b for b in blocks if b["side"] == name and b["kind"] == kind]
            out[f"{kind}/{name}"] = {
                "p50_ms": [b["p50_ms"] for b in mine],
                "median_p50_ms": statistics.median(b["p50_ms"] for b in mine),
                "median_p99_ms": statistics.median(b["p99_ms"] for b in mine),
                "cpu_us_median": median_per_process(mine, "cpu_us_per_call"),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--out", default=None, help="results file stem in bench/results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stops the stacks
    sides: list[Side] = []
    try:
        for name, max_age in (("old", "0"), ("new", None)):
            if max_age is None:
                os.environ.pop(CACHE_ENV, None)
            else:
                os.environ[CACHE_ENV] = max_age
            sides.append(Side(name, BenchStack.start()))
        os.environ.pop(CACHE_ENV, None)
        load_before = load()
        blocks = asyncio.run(run(sides, args.rounds, args.count))
        result = {
            "load_before": load_before,
            "load_after": load(),
            "blocks": blocks,
            "summary": summary(blocks),
        }
        write_ab_result(result, args.out)
    finally:
        for side in sides:
            side.stack.stop()


if __name__ == "__main__":
    main()
