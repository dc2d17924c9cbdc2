"""P9: the rate-limit decision in the forwardAuth path (docs/quality.md).

Starts a private local stack, adds two Traefik routes to the same backend (Caddy, the
Control UI server) — `/bench/plain` without middleware and `/bench/limited` with the
`ratelimit` forwardAuth middleware — and measures both in the same run:

- latency at concurrency 1 over one keep-alive connection (the two routes alternating
  request by request, so drift hits both alike); the decision's cost is limited − plain;
- throughput with `--connections` keep-alive connections for `--seconds` each;
- for reference: `/check` called directly (no Traefik), `ratelimit.check` over NATS, and
  the limiter's decision in process.

Run once with one ratelimit replica and once with two (Traefik balances the replicas
through its internal entrypoint; a replica forwards the keys it does not own over NATS).
Clients spread over 1,000 addresses (X-Forwarded-For), all admitted (a high limit), so
what is measured is the decision, not the refusal.

    .venv/bin/python bench/ratelimit_p9.py [--samples 3000] [--seconds 5] [--connections 32]

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
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from aisopod.settings import nats_servers
from aisopod_ops.launcher.spawn import start_local_stack, stop_local_stack

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
IPS = [f"10.{i >> 8}.{i & 255}.7" for i in range(1000)]
SEED = {
    "auth": {"mode": "token"},
    "limits": {
        "rules": [
            {"name": "http", "limit": 1_000_000, "windowS": 60},
            {"name": "ws_connect", "limit": 60, "windowS": 60},
            {"name": "bench", "key": "principal", "limit": 1_000_000, "windowS": 60},
        ]
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


def add_bench_routes(state: Path) -> list[str]:
    """Three routers to Caddy: without middleware, with a forwardAuth to a no-op server
    (Caddy itself: the floor of any forwardAuth), and with the ratelimit middleware.
    Returns the ratelimit replicas' URLs."""
    dynamic = state / "traefik" / "dynamic"
    routes = yaml.safe_load((dynamic / "routes.yml").read_text())
    caddy = routes["http"]["services"]["static-ui"]["loadBalancer"]["servers"][0]["url"]
    mark = ["bench-mark"]  # the same cheap middleware on every bench route
    bench = {
        "http": {
            "middlewares": {
                # Tells a bench route's answer from the UI's SPA fallback (also a 200).
                "bench-mark": {"headers": {"customResponseHeaders": {"X-Bench-Route": "1"}}},
                "bench-noop-auth": {
                    "forwardAuth": {
                        "address": f"{caddy}/bench-noop",
                        "trustForwardHeader": True,
                        "maxResponseBodySize": 65536,
                    }
                },
            },
            "routers": {
                "bench-noop": {
                    "rule": "Path(`/bench/noop`)",
                    "service": "static-ui@file",
                    "middlewares": ["bench-noop-auth", *mark],
                    "entryPoints": ["web"],
                    "priority": 5000,
                },
                "bench-plain": {
                    "rule": "Path(`/bench/plain`)",
                    "service": "static-ui@file",
                    "middlewares": mark,
                    "entryPoints": ["web"],
                    "priority": 5000,
                },
                "bench-limited": {
                    "rule": "Path(`/bench/limited`)",
                    "service": "static-ui@file",
                    "middlewares": ["ratelimit@file", *mark],
                    "entryPoints": ["web"],
                    "priority": 5000,
                },
            },
        }
    }
    (dynamic / "bench.yml").write_text(yaml.safe_dump(bench))
    services = routes["http"]["services"]
    replicas = sorted(name for name in services if name.startswith("ratelimit-replica-"))
    if replicas:
        return [services[name]["loadBalancer"]["servers"][0]["url"] for name in replicas]
    address = routes["http"]["middlewares"]["ratelimit"]["forwardAuth"]["address"]
    return [address.removesuffix("/check")]


# -- a minimal keep-alive HTTP/1.1 client (the measuring stick must cost little) -------
class Conn:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def get(self, path: str, headers: str = "") -> int:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode())
        return read_response(self.file.readline, self.file.read)

    def marked(self, path: str) -> bool:
        """True when `path` is answered by a bench route (not the UI fallback)."""
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n".encode()
        )
        status = int(self.file.readline().split(b" ", 2)[1])
        length, mark = 0, False
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            mark = mark or name.lower() == b"x-bench-route"
            if name.lower() == b"content-length":
                length = int(value)
        self.file.read(length)
        return status == 200 and mark

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def read_response(readline: Any, read: Any) -> int:
    status = int(readline().split(b" ", 2)[1])
    length = 0
    while (line := readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    if length:
        read(length)
    return status


def decisions(url: str) -> float:
    """The replica's decision counter (all rules, results)."""
    conn = Conn(*host_port(url))
    try:
        conn.sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        status = int(conn.file.readline().split(b" ", 2)[1])
        length = 0
        while (line := conn.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        text = conn.file.read(length).decode() if status == 200 else ""
    finally:
        conn.close()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aisopod_ratelimit_decisions_total{")
    )


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    return host, int(port)


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


def latency(url: str, paths: dict[str, str], samples: int, block: int = 1) -> dict[str, list]:
    """Alternate the paths request by request over one connection (so a neighbour's burst
    of CPU hits both alike); per-request seconds, in pairs."""
    conn = Conn(*host_port(url))
    out: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for i in range(200):  # warm up both routes and every connection pool on the way
            for path in paths.values():
                conn.get(path, f"X-Forwarded-For: {IPS[i % len(IPS)]}\r\n")
        n = 0
        while n < samples:
            for name, path in paths.items():
                for j in range(block):
                    headers = f"X-Forwarded-For: {IPS[(n + j) % len(IPS)]}\r\n"
                    started = time.perf_counter()
                    status = conn.get(path, headers)
                    out[name].append(time.perf_counter() - started)
                    if status != 200:
                        raise RuntimeError(f"{path}: HTTP {status}")
            n += block
    finally:
        conn.close()
    return out


async def throughput(url: str, path: str, connections: int, seconds: float) -> float:
    host, port = host_port(url)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        i = index
        try:
            while time.perf_counter() < stop_at:
                ip = IPS[i % len(IPS)]
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: bench\r\nX-Forwarded-For: {ip}\r\n\r\n".encode()
                )
                status = int((await reader.readline()).split(b" ", 2)[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status}")
                done += 1
                i += connections
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return done / (time.perf_counter() - started)


async def nats_round_trip(info: dict, state: Path, samples: int) -> list[float]:
    import nats

    from aisopod import codec

    password = (state / "secrets" / "nats-admin.password").read_text().strip()
    nc = await nats.connect(nats_servers(info["nats_url"]), user="admin", password=password)
    out = []
    try:
        for i in range(samples + 200):
            body = codec.dumps({"rule": "bench", "key": f"principal:{i % 1000}"})
            started = time.perf_counter()
            await nc.request("aisopod.ratelimit.check", body, timeout=5)
            if i >= 200:
                out.append(time.perf_counter() - started)
    finally:
        await nc.close()
    return out


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
        replica_urls = add_bench_routes(state)
        url = info["http_url"]
        paths = {"plain": "/bench/plain", "noop": "/bench/noop", "limited": "/bench/limited"}
        deadline = time.monotonic() + 30
        conn = Conn(*host_port(url))
        try:  # until Traefik loaded the bench routes
            while not all(conn.marked(path) for path in paths.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("Traefik did not load the bench routes")
                time.sleep(0.2)
        finally:
            conn.close()
        before = [decisions(u) for u in replica_urls]
        lat = latency(url, paths, args.samples)
        after = [decisions(u) for u in replica_urls]
        if sum(after) - sum(before) < args.samples:  # the limited route asked ratelimit
            raise RuntimeError(f"decisions {before} → {after} for {args.samples} requests")
        direct = latency(replica_urls[0], {"check": "/check"}, args.samples // 2)
        rates = {
            name: asyncio.run(throughput(url, paths[name], args.connections, args.seconds))
            for name in ("plain", "limited")
        }
        nats_rt = asyncio.run(nats_round_trip(info, state, args.samples // 2))
    finally:
        stop_stack(proc)
    plain, noop, limited = summary(lat["plain"]), summary(lat["noop"]), summary(lat["limited"])
    # Each limited request against the plain one sent just before it: robust to drift.
    paired = [(b - a) * 1000 for a, b in zip(lat["plain"], lat["limited"], strict=True)]
    own = [(b - a) * 1000 for a, b in zip(lat["noop"], lat["limited"], strict=True)]
    return {
        "ratelimit_replicas": replicas,
        "ownership": ownership,
        "plain_route": plain,
        "noop_forward_auth_route": noop,
        "limited_route": limited,
        "beyond_noop_forward_auth_ms": {
            "p50": round(limited["p50_ms"] - noop["p50_ms"], 4),
            "paired_median": round(statistics.median(own), 4),
        },
        "added_by_ratelimit_ms": {
            "p50": round(limited["p50_ms"] - plain["p50_ms"], 4),
            "p99": round(limited["p99_ms"] - plain["p99_ms"], 4),
            "mean": round(limited["mean_ms"] - plain["mean_ms"], 4),
            "paired_median": round(statistics.median(paired), 4),
        },
        "check_direct": summary(direct["check"]),
        "nats_ratelimit_check": summary(nats_rt),
        "throughput_rps": {k: round(v) for k, v in rates.items()},
        "connections": args.connections,
    }


def machine() -> dict[str, Any]:
    from bench.harness import cpu_model

    model = cpu_model()
    return {
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "niceness": os.nice(0),
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def render_md(result: dict[str, Any]) -> str:
    lines = [
        "# P9: rate-limit decision in the forwardAuth path",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"Python {result['machine']['python']}; {result['when']}; 1-minute load average "
        f"{result['machine']['load_average_1m_at_start']} at start, "
        f"{result['machine']['load_average_1m_at_end']} at end (the machine is shared); "
        f"niceness {result['machine']['niceness']} (the stack inherits it).",
        f"Goal: ≤ 0.5 ms p50 added by the decision. In-process decision: "
        f"{result['in_process_us']['p50']} µs p50.",
        "",
        "| ratelimit replicas (ownership) | plain route p50 / p99 | no-op forwardAuth p50 "
        "| with ratelimit p50 / p99 | added p50 / p99 (paired median) "
        "| beyond a no-op forwardAuth p50 (paired) | /check direct p50 | NATS check p50 "
        "| req/s plain → limited |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in result["scenarios"]:
        p, lim, add = s["plain_route"], s["limited_route"], s["added_by_ratelimit_ms"]
        noop, own = s["noop_forward_auth_route"], s["beyond_noop_forward_auth_ms"]
        direct, nats_check = s["check_direct"]["p50_ms"], s["nats_ratelimit_check"]["p50_ms"]
        rps = s["throughput_rps"]
        lines.append(
            f"| {s['ratelimit_replicas']} ({s['ownership']}) "
            f"| {p['p50_ms']:.3f} / {p['p99_ms']:.3f} ms | {noop['p50_ms']:.3f} ms "
            f"| {lim['p50_ms']:.3f} / {lim['p99_ms']:.3f} ms "
            f"| {add['p50']:.3f} / {add['p99']:.3f} ms ({add['paired_median']:.3f}) "
            f"| {own['p50']:.3f} ms ({own['paired_median']:.3f}) "
            f"| {direct:.3f} ms | {nats_check:.3f} ms "
            f"| {rps['plain']} → {rps['limited']} ({s['connections']} conns) |"
        )
    lines += [
        "",
        "Latency: concurrency 1, one keep-alive connection, the three routes taking turns "
        "request by request; a paired median is the median over turns of the difference. "
        "All routes go to the same Caddy backend; the no-op forwardAuth asks Caddy (a Go "
        "server answering at once), which is the floor of any forwardAuth middleware. "
        "`/check direct`: a client calling one replica without Traefik (with 2 replicas, "
        "replica 1). Throughput: the load generator runs on the same 2 cores.",
        "",
    ]
    return "\n".join(lines)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
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
        "benchmark": "P9 ratelimit decision in the forwardAuth path",
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            **started_machine,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        },
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
        add, plain = s["added_by_ratelimit_ms"], s["plain_route"]
        noop = s["noop_forward_auth_route"]
        rows.append(
            Figure(
                "P9",
                f"rate-limit decision added in the forwardAuth path, p50 (paired median);"
                f" {s['ratelimit_replicas']} replica(s), {s['ownership']}",
                f"{add['p50']:.3f} ms ({add['paired_median']:.3f}); req/s"
                f" {s['throughput_rps']['plain']} → {s['throughput_rps']['limited']}",
                f"route without middleware {plain['p50_ms']:.3f} ms; no-op forwardAuth"
                f" {noop['p50_ms']:.3f} ms; decision in process"
                f" {result['in_process_us']['p50']} µs",
                "≤ 0.5 ms p50",
                add["p50"] <= 0.5,
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
