"""GOMAXPROCS of nats-server and Traefik, side by side in one run (docs/deployment.md,
"GOMAXPROCS").

    .venv/bin/python -m bench.gomaxprocs_ab [--rounds 4] [--seconds 3] [--out STEM]
        [--sides default,nats1,traefik1]

Local stacks at once, one per side, each with one replica of each service, the benchmark
seed and one shared fake upstream: `default` (Go's default, every CPU, for both:
`--nats-gomaxprocs 0 --traefik-gomaxprocs 0`), `nats1` (nats-server at 1), `traefik1`
(Traefik at 1), `auto` (no option: the launcher's rule for this host). Rounds visit the
sides in turn (each leads once per cycle), so all see the same minutes of a shared
machine. Per side and round:

- `handshake`: `--handshakes` sequential WebSocket handshakes through Traefik (P3; the
  client of bench/handshake_ab.py): wall p50, CPU per handshake of each process;
- `turn`: `--turns` WebSocket `agent` turns with `wait` (echo, fresh sessions; P7): wall
  p50, CPU per turn of each process;
- `config.get` and `health` with 50 requests in flight on 50 sockets (P2/P1): req/s, CPU
  per request;
- `/v1` chat completions through Traefik → http-api → fake upstream, 64 in flight (P6):
  req/s, CPU per request;
- `ratelimit.edge` over NATS, 64 in flight (P9's throughput): checks/s, CPU per check.

CPU is utime + stime from /proc (load-independent, unlike wall and req/s). The load
average is recorded with every block.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench import http_proxy, ratelimit_p9
from bench.agent_bench import _round_trips
from bench.handshake_ab import Side, cpu_seconds, load
from bench.harness import RESULTS, machine_name, progress, shared_once
from bench.local_stack import FAKE_API_KEY, BenchStack
from bench.ws_bench import rpc
from bench.ws_lean_client import connect_gateway, throughput

PROCESSES = ("traefik", "nats", "ws-gateway", "auth", "ratelimit", "runtime", "http-api")
# Side → launcher options (`--nats-gomaxprocs`, `--traefik-gomaxprocs`); `auto` gives none:
# the launcher's own rule for this host (launcher/gosched.py).
SIDES: dict[str, tuple[str, ...]] = {
    "default": ("--nats-gomaxprocs", "0", "--traefik-gomaxprocs", "0"),
    "nats1": ("--nats-gomaxprocs", "1", "--traefik-gomaxprocs", "0"),
    "traefik1": ("--nats-gomaxprocs", "0", "--traefik-gomaxprocs", "1"),
    "auto": (),
    "gogc100": (),  # the rule for GOMAXPROCS, every Go child at Go's default GOGC (SIDE_ENV)
}
# Side → environment over this one for its launcher: `gogc100` sets the user's own `GOGC`,
# which overrides the launcher's GOGC for nats-server (launcher/gosched.py, GOGC_FOR).
SIDE_ENV: dict[str, dict[str, str]] = {"gogc100": {"GOGC": "100"}}


def go_setting(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"GOMAXPROCS=")]
    return found[0] if found else "unset (Go's default: every CPU)"


class Measured:
    def __init__(self, name: str, stack: BenchStack) -> None:
        self.name = name
        self.stack = stack
        self.ws = Side(name, stack)
        self.pids = shared_once(stack.pids, PROCESSES)  # auth+ratelimit once
        # What each Go child really runs with (its environment as started).
        self.gomaxprocs = {n: go_setting(self.pids[n][0]) for n in ("nats", "traefik")}

    def cpu(self) -> dict[str, float]:
        return {n: sum(cpu_seconds(p) for p in group) for n, group in self.pids.items()}

    def per_op(self, before: dict[str, float], ops: int) -> dict[str, int]:
        after = self.cpu()
        return {n: round((after[n] - before[n]) / max(1, ops) * 1e6) for n in before}

    async def handshakes(self, count: int) -> dict[str, Any]:
        before = self.cpu()
        walls = [(await self.ws.handshake())[3] for _ in range(count)]
        return {
            "p50_ms": round(statistics.median(walls) * 1000, 2),
            "cpu_us_per_op": self.per_op(before, count),
        }

    async def turns(self, count: int) -> dict[str, Any]:
        client, _ = await connect_gateway(
            "127.0.0.1", self.stack.http_port, self.stack.token, subscribe=[]
        )
        prefix = [f"agent:main:gmp-{uuid.uuid4().hex[:8]}"]

        def frame(request_id: str) -> bytes:
            params = {
                "message": f"turn {request_id}",
                "sessionKey": f"{prefix[0]}-{request_id}",
                "wait": True,
            }
            return orjson.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": "agent", "params": params}
            )

        try:
            await _round_trips(client, frame, 5)  # warm this socket
            prefix[0] = f"agent:main:gmp-{uuid.uuid4().hex[:8]}"  # fresh sessions again
            before = self.cpu()
            walls = await _round_trips(client, frame, count)
            cpu = self.per_op(before, count)
        finally:
            client.close()
        return {"p50_ms": round(statistics.median(walls) * 1000, 2), "cpu_us_per_op": cpu}

    async def ws_rate(self, method: str, seconds: float) -> dict[str, Any]:
        clients = [
            (
                await connect_gateway(
                    "127.0.0.1", self.stack.http_port, self.stack.token, subscribe=[]
                )
            )[0]
            for _ in range(50)
        ]
        try:
            before = self.cpu()
            started = time.perf_counter()
            rate = await throughput(clients, rpc(method), seconds)
            ops = int(rate * (time.perf_counter() - started))
            cpu = self.per_op(before, ops)
        finally:
            for client in clients:
                client.close()
        return {"req_per_s": round(rate), "cpu_us_per_op": cpu}

    async def v1_rate(self, seconds: float) -> dict[str, Any]:
        target = http_proxy.Target(
            "traefik",
            f"{self.stack.info['http_url']}/v1",
            "fake/fake-small",
            {"authorization": f"Bearer {self.stack.token}"},
            self.pids,
        )
        r = await http_proxy.concurrent(target, False, 64, seconds)
        cpu = {n: round(v) for n, v in r["cpu_us_per_request"].items()}
        return {"req_per_s": round(r["rps"]), "cpu_us_per_op": cpu}

    async def edge_checks(self, seconds: float) -> dict[str, Any]:
        info, state = self.stack.info, self.stack.state_dir
        nc = await ratelimit_p9.connect(info, state, "http-api")
        try:
            before = self.cpu()
            started = time.perf_counter()
            rate = await ratelimit_p9.throughput(nc, "edge", 64, seconds)
            cpu = self.per_op(before, int(rate * (time.perf_counter() - started)))
        finally:
            await nc.close()
        return {"req_per_s": round(rate), "cpu_us_per_op": cpu}


async def one_block(side: Measured, args: argparse.Namespace) -> dict[str, Any]:
    block: dict[str, Any] = {"side": side.name, "load": load()}
    block["handshake"] = await side.handshakes(args.handshakes)
    block["turn"] = await side.turns(args.turns)
    block["config.get"] = await side.ws_rate("config.get", args.seconds)
    block["health"] = await side.ws_rate("health", args.seconds)
    block["v1"] = await side.v1_rate(args.seconds)
    block["ratelimit.edge"] = await side.edge_checks(args.seconds)
    return block


MEASURES = ("handshake", "turn", "config.get", "health", "v1", "ratelimit.edge")


def summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SIDES:
        mine = [b for b in blocks if b["side"] == name]
        if not mine:
            continue
        side: dict[str, Any] = {}
        for measure in MEASURES:
            rows = [b[measure] for b in mine]
            key = "p50_ms" if "p50_ms" in rows[0] else "req_per_s"
            cpu = {
                n: statistics.median(r["cpu_us_per_op"][n] for r in rows)
                for n in rows[0]["cpu_us_per_op"]
            }
            side[measure] = {
                key: [r[key] for r in rows],
                f"median_{key}": statistics.median(r[key] for r in rows),
                "cpu_us_per_op_median": cpu,
                "cpu_us_per_op_sum": sum(cpu.values()),
            }
        out[name] = side
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    sides = list(s)
    lines = [
        f"# GOMAXPROCS of nats-server and Traefik — {result['date']} on {result['machine']}",
        "",
        f"{result['rounds']} rounds, the sides alternating (bench/gomaxprocs_ab.py): "
        f"{result['handshakes']} handshakes, {result['turns']} turns, then {result['seconds']} s"
        " each of config.get / health (50 in flight), /v1 chat completions (64 in flight) and"
        " ratelimit.edge over NATS (64 in flight) per block. Load average"
        f" {result['load_before']} before, {result['load_after']} after (2 shared cores;"
        " per block below). Medians of the rounds; CPU in µs per operation (utime+stime).",
        "",
        "GOMAXPROCS as the processes were started (from /proc/PID/environ): "
        + "; ".join(f"{n}: {g}" for n, g in result["gomaxprocs"].items()),
        "",
        "| measure | figure | " + " | ".join(sides) + " |",
        "|---|---|" + "---|" * len(sides),
    ]
    for measure in MEASURES:
        key = "p50_ms" if "median_p50_ms" in s[sides[0]][measure] else "req_per_s"
        lines.append(
            f"| {measure} | median {key} | "
            + " | ".join(str(s[n][measure][f"median_{key}"]) for n in sides)
            + " |"
        )
        for proc in ("nats", "traefik"):
            lines.append(
                f"| {measure} | CPU µs/op {proc} | "
                + " | ".join(str(s[n][measure]["cpu_us_per_op_median"].get(proc)) for n in sides)
                + " |"
            )
        lines.append(
            f"| {measure} | CPU µs/op all measured | "
            + " | ".join(str(s[n][measure]["cpu_us_per_op_sum"]) for n in sides)
            + " |"
        )
    lines += ["", "Blocks in the order run (load; handshake p50, turn p50 ms; config.get,"]
    lines += ["v1, ratelimit.edge req/s; nats CPU µs per handshake/turn):", ""]
    for b in result["blocks"]:
        lines.append(
            f"- {b['side']}: load {b['load']}; {b['handshake']['p50_ms']}, {b['turn']['p50_ms']};"
            f" {b['config.get']['req_per_s']}, {b['v1']['req_per_s']},"
            f" {b['ratelimit.edge']['req_per_s']};"
            f" {b['handshake']['cpu_us_per_op'].get('nats')}"
            f"/{b['turn']['cpu_us_per_op'].get('nats')}"
        )
    return "\n".join(lines) + "\n"


async def run(sides: list[Measured], args: argparse.Namespace) -> list[dict[str, Any]]:
    for side in sides:  # warm up: imports, first subscriptions, caches
        for _ in range(20):
            await side.ws.handshake()
        await side.turns(5)
    blocks = []
    for r in range(args.rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]  # each side leads in turn
        for side in order:
            block = await one_block(side, args)
            progress(json.dumps(block))
            blocks.append(block)
    return blocks


def main() -> None:
    from aisopod_fake_upstream.harness import FakeUpstream

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--handshakes", type=int, default=100)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sides", default="default,nats1,traefik1", help="of " + ",".join(SIDES))
    parser.add_argument("--out", default=None, help="results file stem in bench/results")
    args = parser.parse_args()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        parser.error(f"--sides: unknown {sorted(unknown)}; known: {list(SIDES)}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started: list[Measured] = []
    with FakeUpstream(api_key=FAKE_API_KEY, subprocess=True, startup_timeout=60) as fake:
        try:
            for name in sides:
                stack = BenchStack.start(
                    "--replicas", "1", *SIDES[name], shared_fake=fake, env=SIDE_ENV.get(name)
                )
                started.append(Measured(name, stack))
            load_before = load()
            blocks = uvloop.run(run(started, args))
        finally:
            for side in started:
                side.stack.stop()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_name(),
        "rounds": args.rounds,
        "handshakes": args.handshakes,
        "turns": args.turns,
        "seconds": args.seconds,
        "load_before": load_before,
        "load_after": load(),
        "gomaxprocs": {side.name: side.gomaxprocs for side in started},
        "blocks": blocks,
        "summary": summary(blocks),
    }
    stem = args.out or f"{time.strftime('%Y-%m-%d-%H%M')}-gomaxprocs-ab-{result['machine']}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    progress(f"wrote {RESULTS / stem}.md")


if __name__ == "__main__":
    main()
