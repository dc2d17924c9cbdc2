"""Where http-api's added latency goes at concurrency 1 (docs/http-api.md, Performance).

    PYTHONPATH=. .venv/bin/python bench/http_c1_breakdown.py [--requests 2000]
        [--baseline GIT_REF]

Starts a nats-server, the fake upstream and, as bench/http_proxy.py does, http-api with
the auth and ratelimit services it asks per request (with `--baseline`, a second set on the
code of that ref, on its own subject prefix). Then, one request of each in turn so every
figure sees the same moments of machine load: the fake upstream directly, through each
http-api, each ratelimit's `ratelimit.edge` asked from a NATS client here, and two echo
round trips as floors (a responder on another connection of this process, and one in a
process of its own). Before that, CPU per request of ratelimit and http-api at c=1, from
/proc. Results: bench/results/http_c1_breakdown.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_proxy import (  # a sibling script, not a package
    BEFORE,
    FAKE_KEY,
    REPO,
    RESULTS,
    THROUGH_EDGE,
    Processes,
    Target,
    baseline_tree,
    cpu_seconds,
    machine,
    one,
)

from aisopod.requester import Requester
from aisopod_fake_upstream.harness import FakeUpstream
from aisopod_http_api.upstream.pool import UpstreamPool

ECHO = """
import asyncio, sys, nats, uvloop
async def main(url):
    nc = await nats.connect(url)
    async def echo(msg): await msg.respond(msg.data)
    await nc.subscribe("probe.echo.proc", cb=echo)
    await asyncio.Event().wait()
uvloop.run(main(sys.argv[1]))
"""
EDGE_REQUEST = orjson.dumps({"path": "/v1/chat/completions", "clientIp": "127.0.0.1"})


def p50(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def p90(samples: list[float]) -> float:
    return round(sorted(samples)[int(len(samples) * 0.9)] * 1000, 3)


async def measure(
    n: int, nats_url: str, fake_url: str, sets: list[tuple[str, str, dict[str, int]]]
) -> dict[str, Any]:
    """`sets`: (suffix, subject prefix, {"http-api": pid, "ratelimit": pid}) per code."""
    nc = await nats.connect(nats_url)
    requester = Requester(nc)
    echo_nc = await nats.connect(nats_url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await echo_nc.subscribe("probe.echo.local", cb=echo)
    pool = UpstreamPool()
    direct = Target("direct", fake_url, "fake-small", {"authorization": f"Bearer {FAKE_KEY}"})
    direct_req = direct.request(False)
    vias = {
        suffix: Target(f"http-api{suffix}", f"{url}/v1", "fake/fake-small", THROUGH_EDGE)
        for suffix, url, _, _ in _urls(sets)
    }
    via_reqs = {suffix: target.request(False) for suffix, target in vias.items()}
    try:
        deadline = time.monotonic() + 10
        while True:  # the echo process subscribes after its start-up
            try:
                await requester.request("probe.echo.proc", b"x", timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

        async def timed(work: Any) -> float:
            started = time.perf_counter()
            await work
            return time.perf_counter() - started

        cpu: dict[str, dict[str, float]] = {}
        for suffix, _, prefix, pids in _urls(sets):
            for _ in range(300):  # warm: connections, caches
                await one(pool, *via_reqs[suffix])
                await requester.request(f"{prefix}.ratelimit.edge", EDGE_REQUEST, timeout=5)
            before = {k: cpu_seconds(v) for k, v in pids.items()}
            for _ in range(n):
                await one(pool, *via_reqs[suffix])
            cpu[f"http-api{suffix}"] = {
                k: round((cpu_seconds(v) - before[k]) / n * 1e6) for k, v in pids.items()
            }
        samples: dict[str, list[float]] = {"direct": []}
        for suffix, _, _, _ in _urls(sets):
            samples[f"http-api{suffix}"] = []
            samples[f"ratelimit.edge{suffix}"] = []
        samples["echo, this process"] = []
        samples["echo, own process"] = []
        for _ in range(n):
            samples["direct"].append(await one(pool, *direct_req) or 0.0)
            for suffix, _, prefix, _ in _urls(sets):
                samples[f"http-api{suffix}"].append(await one(pool, *via_reqs[suffix]) or 0.0)
                samples[f"ratelimit.edge{suffix}"].append(
                    await timed(
                        requester.request(f"{prefix}.ratelimit.edge", EDGE_REQUEST, timeout=5)
                    )
                )
            samples["echo, this process"].append(
                await timed(requester.request("probe.echo.local", b"x", timeout=5))
            )
            samples["echo, own process"].append(
                await timed(requester.request("probe.echo.proc", b"x", timeout=5))
            )
        return {
            "c1": {k: {"p50_ms": p50(v), "p90_ms": p90(v)} for k, v in samples.items()},
            "cpu_us_per_request_c1": cpu,
        }
    finally:
        await pool.close()
        await nc.close()
        await echo_nc.close()


_URLS: dict[str, str] = {}


def _urls(
    sets: list[tuple[str, str, dict[str, int]]],
) -> list[tuple[str, str, str, dict[str, int]]]:
    return [(suffix, _URLS[suffix], prefix, pids) for suffix, prefix, pids in sets]


def report(result: dict[str, Any], info: dict[str, Any], n: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "http-api at c=1: where the time goes", "machine": info, **result}
    (RESULTS / "http_c1_breakdown.json").write_text(json.dumps(document, indent=2) + "\n")
    baseline = info.get("baseline")
    lines = [
        "# http-api at c=1: where the added latency goes",
        "",
        f"Machine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']} ({info['note']})."
        f" Load average at the start: {info['load']}, at the end: {info['load_end']}. "
        f"{n} requests of each kind, one of each in turn (the same moments of load for all)."
        + (
            f" Rows named `…{BEFORE}` run the code of `{baseline}` in the same run."
            if baseline
            else ""
        ),
        "",
        "| round trip | p50 ms | p90 ms |",
        "|---|---|---|",
    ]
    for name, row in result["c1"].items():
        lines.append(f"| {name} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} |")
    lines += ["", "CPU per request at c=1 (µs), measured before the round trips above:", ""]
    for name, row in result["cpu_us_per_request_c1"].items():
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    (RESULTS / "http_c1_breakdown.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline", help="a git ref: measure its code beside the current")
    args = parser.parse_args()
    info = machine()
    procs = Processes()
    builds: list[tuple[str, str, str | None]] = [("", "bench", None)]
    if args.baseline:
        info["baseline"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", args.baseline],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        tree = Path(tempfile.mkdtemp(prefix="bench-baseline-", dir=procs.tmp.name))
        builds.append((BEFORE, "benchb", baseline_tree(args.baseline, tree)))
    try:
        with FakeUpstream(api_key=FAKE_KEY, subprocess=True) as fake:
            nats_url = procs.nats()
            sets = []
            for suffix, prefix, pythonpath in builds:
                _URLS[suffix] = procs.http_api(nats_url, fake.base_url, prefix, pythonpath)
                _, ratelimit, http_api = (p.pid for p in procs.procs[-3:])
                sets.append((suffix, prefix, {"ratelimit": ratelimit, "http-api": http_api}))
            echo = subprocess.Popen([sys.executable, "-c", ECHO, nats_url])
            try:
                result = uvloop.run(measure(args.requests, nats_url, fake.base_url, sets))
            finally:
                echo.terminate()
                echo.wait(10)
    finally:
        procs.stop()
    info["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report(result, info, args.requests)
    print((RESULTS / "http_c1_breakdown.md").read_text())


if __name__ == "__main__":
    main()
