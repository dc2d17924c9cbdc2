"""P9: the rate-limit decision as the edge asks it (docs/quality.md).

http-api and ws-gateway ask `<prefix>.ratelimit.edge` `{path, clientIp}` over NATS for
every API request and every upgrade (docs/ratelimit.md, "The edge check"). This bench
starts a private local stack, connects to its NATS as the http-api's NATS user (the same
permissions, the same server) and measures, in the same run:

- latency at concurrency 1: `ratelimit.edge` and, as the reference, a raw NATS
  request/reply echo (a bare subscriber that answers at once), taking turns request by
  request so a neighbour's burst of CPU hits both alike; the decision's cost is
  edge − echo (also as a paired median);
- throughput with `--connections` requests in flight for `--seconds` each (edge, echo);
- exactness: `--burst` concurrent edge checks from one client IP against a route class
  whose rule admits `EXACT_LIMIT` per minute; never more than the limit may be admitted
  (the point of the check with 2 replicas: either replica takes a request from the queue
  group and the key's owner decides);
- the limiter's decision in process.

Run once with one ratelimit replica and once with two (scenarios `REPLICAS:OWNERSHIP`).
Clients spread over 1,000 addresses, all admitted (a high limit), so what is measured is
the decision, not the refusal.

    .venv/bin/python -m bench.ratelimit_p9 [--samples 3000] [--seconds 5] [--connections 32]

Writes bench/results/ratelimit_p9.json and .md (`--output NAME` for another name). On a
machine shared with other work, `nice -n -10` approximates an idle one; the niceness and
the load average are recorded with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from aisopod import codec
from aisopod.bus import decode_reply
from aisopod.contracts.ratelimit import EdgeCheckResult
from aisopod.settings import nats_servers
from aisopod_ops.launcher.spawn import start_local_stack, stop_local_stack

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
IPS = [f"10.{i >> 8}.{i & 255}.7" for i in range(1000)]
PREFIX = "aisopod"
EDGE = f"{PREFIX}.ratelimit.edge"
# The echo lives under a subject the http-api user may publish to and no service serves.
ECHO = f"{PREFIX}.ratelimit.bench-echo"
EXACT_LIMIT = 50
EXACT_PATH = "/bench-exact/x"
SEED = {
    "auth": {"mode": "token"},
    "limits": {
        "rules": [
            {"name": "http", "limit": 1_000_000, "windowS": 60},
            {"name": "ws_connect", "limit": 60, "windowS": 60},
            {"name": "bench_exact", "limit": EXACT_LIMIT, "windowS": 60},
        ],
        "routes": [
            {"pathPrefix": "/bench-exact", "rule": "bench_exact"},
            {"pathPrefix": "/ws", "rule": "ws_connect"},
            {"pathPrefix": "/", "rule": "http"},
        ],
    },
}


# -- the stack ------------------------------------------------------------------------
def start_stack(
    state: Path, ratelimit_replicas: int, ownership: str
) -> tuple[subprocess.Popen[bytes], dict]:
    state.mkdir(parents=True)
    seed = state.parent / "seed.yaml"
    seed.write_text(json.dumps({**SEED, "limits": {**SEED["limits"], "ownership": ownership}}))
    args = ("--config", str(seed), "--replicas", "1", "--scale", f"ratelimit={ratelimit_replicas}")
    try:
        return start_local_stack(
            state, *args, "--log-level", "WARNING", log_file=state.parent / "launcher.log"
        )
    except RuntimeError as exc:
        tails = [
            f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
            for log in sorted((state / "logs").glob("ratelimit*.log"))
        ]
        raise RuntimeError("\n".join([str(exc), *tails])) from None


stop_stack = stop_local_stack


async def connect(info: dict, state: Path, user: str) -> NatsClient:
    password = (state / "secrets" / f"nats-{user}.password").read_text().strip()
    return await nats.connect(nats_servers(info["nats_url"]), user=user, password=password)


async def edge(nc: NatsClient, path: str, ip: str) -> EdgeCheckResult:
    body = codec.dumps({"path": path, "clientIp": ip})
    reply = await nc.request(EDGE, body, timeout=5)
    return EdgeCheckResult.model_validate(decode_reply(reply.data))


async def echo(nc: NatsClient, ip: str) -> None:
    await nc.request(ECHO, codec.dumps({"path": "/v1/models", "clientIp": ip}), timeout=5)


# -- measures -------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {
        "p50_ms": round(percentile(ms, 0.5), 4),
        "p99_ms": round(percentile(ms, 0.99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


async def latency(nc: NatsClient, samples: int) -> dict[str, list[float]]:
    """Echo and edge taking turns; per-request seconds, in pairs."""
    out: dict[str, list[float]] = {"echo": [], "edge": []}
    for i in range(200):  # warm up both paths (and the replicas' forwarding)
        await echo(nc, IPS[i % len(IPS)])
        await edge(nc, "/v1/models", IPS[i % len(IPS)])
    for i in range(samples):
        ip = IPS[i % len(IPS)]
        started = time.perf_counter()
        await echo(nc, ip)
        out["echo"].append(time.perf_counter() - started)
        started = time.perf_counter()
        result = await edge(nc, "/v1/models", ip)
        out["edge"].append(time.perf_counter() - started)
        if not result.allowed or not result.counted:
            raise RuntimeError(f"edge check refused or uncounted: {result}")
    return out


async def throughput(nc: NatsClient, which: str, in_flight: int, seconds: float) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        i = index
        while time.perf_counter() < stop_at:
            ip = IPS[i % len(IPS)]
            if which == "edge":
                await edge(nc, "/v1/models", ip)
            else:
                await echo(nc, ip)
            done += 1
            i += in_flight

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return done / (time.perf_counter() - started)


async def exactness(nc: NatsClient, burst: int) -> dict[str, int]:
    """`burst` concurrent checks from one address against a rule admitting EXACT_LIMIT."""
    results = await asyncio.gather(*(edge(nc, EXACT_PATH, "10.99.0.1") for _ in range(burst)))
    admitted = sum(r.allowed for r in results)
    if admitted > EXACT_LIMIT:
        raise RuntimeError(f"admitted {admitted} of {burst} with a limit of {EXACT_LIMIT}")
    return {"limit": EXACT_LIMIT, "sent": burst, "admitted": admitted}


async def measure(info: dict, state: Path, args: argparse.Namespace) -> dict[str, Any]:
    responder = await connect(info, state, "admin")
    client = await connect(info, state, "http-api")

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    try:
        await responder.subscribe(ECHO, cb=answer)
        await responder.flush()
        lat = await latency(client, args.samples)
        rates = {
            which: await throughput(client, which, args.connections, args.seconds)
            for which in ("echo", "edge")
        }
        exact = await exactness(client, args.burst)
    finally:
        await client.close()
        await responder.close()
    return {"latency": lat, "rates": rates, "exact": exact}


def in_process(samples: int) -> list[float]:
    from aisopod.config.model import GatewayConfig
    from aisopod_ratelimit.limiter import Limiter
    from aisopod_ratelimit.ruleset import RuleSet

    limiter = Limiter(RuleSet.from_section(GatewayConfig.model_validate(SEED).limits))
    keys = [f"ip:{ip}" for ip in IPS]
    out = []
    for i in range(samples):
        started = time.perf_counter()
        limiter.check("http", keys[i % len(keys)])
        out.append(time.perf_counter() - started)
    return out


# -- one scenario ------------------------------------------------------------------------
def scenario(
    replicas: int, ownership: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    state = workdir / f"rl{replicas}-{ownership}" / "state"
    proc, info = start_stack(state, replicas, ownership)
    try:
        measured = asyncio.run(measure(info, state, args))
    finally:
        stop_stack(proc)
    lat = measured["latency"]
    echo_s, edge_s = summary(lat["echo"]), summary(lat["edge"])
    # Each edge check against the echo sent just before it: robust to drift.
    paired = [(b - a) * 1000 for a, b in zip(lat["echo"], lat["edge"], strict=True)]
    return {
        "ratelimit_replicas": replicas,
        "ownership": ownership,
        "echo": echo_s,
        "edge": edge_s,
        "added_by_decision_ms": {
            "p50": round(edge_s["p50_ms"] - echo_s["p50_ms"], 4),
            "p99": round(edge_s["p99_ms"] - echo_s["p99_ms"], 4),
            "paired_median": round(statistics.median(paired), 4),
        },
        "throughput_rps": {k: round(v) for k, v in measured["rates"].items()},
        "in_flight": args.connections,
        "exact": measured["exact"],
    }


def machine() -> dict[str, Any]:
    from bench.harness import cpu_model

    return {
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "niceness": os.nice(0),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def render_md(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# P9: rate-limit decision (`ratelimit.edge` over NATS, as http-api asks it)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; {result['when']}; "
        f"1-minute load average {m['load_average_1m_at_start']} at start, "
        f"{m['load_average_1m_at_end']} at end (the machine is shared); niceness "
        f"{m['niceness']} (the stack inherits it).",
        f"Goal: ≤ 0.5 ms p50 added by the decision; exact with 2 replicas. In-process "
        f"decision: {result['in_process_us']['p50']} µs p50.",
        "",
        "| ratelimit replicas (ownership) | NATS echo p50 / p99 | `ratelimit.edge` p50 / p99 "
        "| added p50 / p99 (paired median) | req/s echo → edge | burst from one IP: admitted "
        "/ limit |",
        "|---|---|---|---|---|---|",
    ]
    for s in result["scenarios"]:
        e, d, add, rps, ex = (
            s["echo"],
            s["edge"],
            s["added_by_decision_ms"],
            s["throughput_rps"],
            s["exact"],
        )
        lines.append(
            f"| {s['ratelimit_replicas']} ({s['ownership']}) "
            f"| {e['p50_ms']:.3f} / {e['p99_ms']:.3f} ms "
            f"| {d['p50_ms']:.3f} / {d['p99_ms']:.3f} ms "
            f"| {add['p50']:.3f} / {add['p99']:.3f} ms ({add['paired_median']:.3f}) "
            f"| {rps['echo']} → {rps['edge']} ({s['in_flight']} in flight) "
            f"| {ex['admitted']} of {ex['sent']} / {ex['limit']} |"
        )
    lines += [
        "",
        "Latency: concurrency 1 from one NATS connection with the http-api's NATS user; the "
        "echo (a bare subscriber answering at once on another connection) and the edge check "
        "take turns; a paired median is the median over turns of the difference. The echo is "
        "the floor of any NATS request/reply, so `added` is what the ratelimit service and "
        "its owner forwarding cost beyond it. Throughput: one connection, the load generator "
        "on the same cores as the stack.",
        "",
    ]
    return "\n".join(lines)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32, help="requests in flight")
    parser.add_argument("--burst", type=int, default=4 * EXACT_LIMIT)
    parser.add_argument("--output", default="ratelimit_p9")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["1:primary", "2:primary", "2:hash"],
        help="REPLICAS:OWNERSHIP pairs",
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every scenario (each on a private stack of its own) and the in-process decision."""
    started_machine = machine()
    with tempfile.TemporaryDirectory(prefix="bench-p9-") as tmp:
        scenarios = []
        for item in args.scenarios:
            replicas, _, ownership = item.partition(":")
            scenarios.append(scenario(int(replicas), ownership or "primary", args, Path(tmp)))
    decisions = in_process(200_000)
    return {
        "benchmark": "P9 ratelimit decision: ratelimit.edge over NATS",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**started_machine, "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "samples": args.samples,
        "in_process_us": {
            "p50": round(percentile(decisions, 0.5) * 1e6, 2),
            "p99": round(percentile(decisions, 0.99) * 1e6, 2),
        },
        "scenarios": scenarios,
    }


def figures(result: dict[str, Any]) -> list[Any]:
    """The rows of the common report (`python -m bench`, bench/harness.py)."""
    from bench.harness import Figure

    rows = []
    for s in result["scenarios"]:
        add, ex = s["added_by_decision_ms"], s["exact"]
        rows.append(
            Figure(
                "P9",
                f"rate-limit decision (ratelimit.edge over NATS) beyond a NATS echo, p50"
                f" (paired median); {s['ratelimit_replicas']} replica(s), {s['ownership']}",
                f"{add['p50']:.3f} ms ({add['paired_median']:.3f}); edge"
                f" {s['edge']['p50_ms']:.3f} / {s['edge']['p99_ms']:.3f} ms p50/p99;"
                f" admitted {ex['admitted']}/{ex['limit']}",
                f"NATS echo {s['echo']['p50_ms']:.3f} ms p50; decision in process"
                f" {result['in_process_us']['p50']} µs",
                "≤ 0.5 ms p50; never more than the limit",
                add["p50"] <= 0.5 and ex["admitted"] <= ex["limit"],
            )
        )
    return rows


def main() -> None:
    args = options()
    result = run(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
