"""Memory of the default local stack after start and after use: RSS of every process (the
launcher included, a process that runs several services once) after the stack settled
idle, right after a burst of use, and after quiet spells of the lengths asked for. What a
process keeps after use is what `bench/openclaw_bench.py`'s idle figure, read after its
run, adds to the after-start one (docs/deployment.md, "After use").

The burst, as the OpenClaw bench's load: `--handshakes` WebSocket handshakes one after
another; `config.get` over the WebSocket through Traefik with 50 connections for
`--burst-s` seconds (thousands of requests; ws-gateway, NATS, the runtime's config reads);
`--idle-connections` WebSockets opened (16 handshakes at a time), held for a moment and
closed; then `/v1/chat/completions` with the `openai` SDK (agent turns: http-api, auth,
ratelimit, the runtime) one after another. `--handshakes 0 --idle-connections 0` is the
burst of the first runs (config.get and turns only).

Sides (`--side LABEL:KEY=VALUE,KEY=VALUE`, repeatable) start the launcher with those
variables over this environment; the rounds take the sides in turn (A B A B …), so both
are measured in the same minutes. Besides RSS, each read records the Go processes'
anonymous RSS (their heap and stacks; the rest of a Go binary's RSS is its file pages).

    .venv/bin/python -m bench.memory_after_use [--rounds 2] [--quiet-s 30,60] \
        [--side base: --side limit:GOMEMLIMIT=40MiB] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from bench.harness import RESULTS, processes_by_name, progress, rss_anon_kib, rss_kib
from bench.local_stack import BenchStack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_lean_client import LeanClient, connect_gateway, throughput  # a sibling

SETTLE_S = 3.0  # as bench/profiles_memory.py: RSS settles for a moment after readiness
CONNECTIONS = 50
GO_PROCESSES = ("nats", "traefik", "caddy")
IDLE_HOLD_S = 2.0  # the OpenClaw bench's settling pause with its idle connections open


def config_get(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"config.get","params":{},"id":' + str(n).encode() + b"}"


async def connect(stack: BenchStack) -> LeanClient:
    return (await connect_gateway("127.0.0.1", stack.http_port, stack.token, subscribe=[]))[0]


async def handshakes(stack: BenchStack, count: int) -> None:
    for _ in range(count):
        (await connect(stack)).close()


async def ws_burst(stack: BenchStack, seconds: float) -> int:
    clients = [await connect(stack) for _ in range(CONNECTIONS)]
    try:
        rate = await throughput(clients, config_get, seconds)
    finally:
        for client in clients:
            client.close()
    return round(rate * seconds)


async def idle_connections(stack: BenchStack, count: int) -> None:
    """`count` connections open at once (16 handshakes at a time), then all closed."""
    clients: list[LeanClient] = []
    gate = asyncio.Semaphore(16)

    async def one() -> None:
        async with gate:
            clients.append(await connect(stack))

    try:
        await asyncio.gather(*(one() for _ in range(count)))
        for client in clients:
            client.inbox = None  # idle: drop ticks and events unread
        await asyncio.sleep(IDLE_HOLD_S)  # held open for a moment, as the OpenClaw bench
    finally:
        for client in clients:
            client.close()


def agent_turns(stack: BenchStack, turns: int) -> None:
    client = OpenAI(base_url=f"{stack.info['http_url']}/v1", api_key=stack.token)
    for n in range(turns):
        reply = client.chat.completions.create(
            model="aisopod/main", messages=[{"role": "user", "content": f"turn {n}"}]
        )
        assert reply.choices[0].message.content, reply


def read(stack: BenchStack) -> dict[str, dict[str, float]]:
    """RSS per process (MiB), and the Go processes' anonymous RSS."""
    groups = processes_by_name(stack.pids, stack.proc.pid)
    rss = {
        name: round(sum(rss_kib(pid) for pid in group) / 1024, 1) for name, group in groups.items()
    }
    anon = {
        name: round(sum(rss_anon_kib(pid) for pid in group) / 1024, 1)
        for name, group in groups.items()
        if name in GO_PROCESSES
    }
    return {"rss": rss, "go_anon": anon}


def measure(args: argparse.Namespace, env: dict[str, str], logs: Path | None) -> dict[str, Any]:
    stack = BenchStack.start(with_fake=False, env=env)
    try:
        time.sleep(SETTLE_S)  # a settling pause before reading RSS, as profiles_memory
        out: dict[str, Any] = {"reads": {"after start": read(stack)}}
        started = time.monotonic()
        if args.handshakes:
            progress(f"{args.handshakes} handshakes")
            asyncio.run(handshakes(stack, args.handshakes))
        progress(f"config.get over {CONNECTIONS} WebSockets for {args.burst_s:.0f} s")
        out["config_get_requests"] = asyncio.run(ws_burst(stack, args.burst_s))
        if args.idle_connections:
            progress(f"{args.idle_connections} idle connections opened and closed")
            asyncio.run(idle_connections(stack, args.idle_connections))
        progress(f"{args.turns} agent turns over /v1/chat/completions")
        agent_turns(stack, args.turns)
        out["burst_s"] = round(time.monotonic() - started, 1)
        out["reads"]["after burst"] = read(stack)
        quiet_from = time.monotonic()
        for quiet in args.quiet_s:
            # The quiet spell itself is what is measured, not a wait for a condition.
            time.sleep(max(0.0, quiet_from + quiet - time.monotonic()))
            out["reads"][f"after {quiet:g} s quiet"] = read(stack)
        if logs is not None:
            shutil.copytree(stack.state_dir / "logs", logs, dirs_exist_ok=True)
    finally:
        stack.stop()
    out["totals"] = {
        when: round(sum(values["rss"].values()), 1) for when, values in out["reads"].items()
    }
    return out


def parse_side(text: str) -> tuple[str, dict[str, str]]:
    label, _, assignments = text.partition(":")
    # Split at ",NAME=" only: a value may hold commas (GODEBUG=gctrace=1,scavtrace=1).
    items = re.split(r",(?=[A-Za-z_][A-Za-z0-9_]*=)", assignments)
    env = dict(item.split("=", 1) for item in items if item)
    return label or "base", env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--burst-s", type=float, default=5.0)
    parser.add_argument("--handshakes", type=int, default=100)
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument(
        "--quiet-s",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[30.0, 60.0],
        help="read after these many seconds of quiet (comma-separated, ascending)",
    )
    parser.add_argument(
        "--side",
        action="append",
        type=parse_side,
        help="LABEL:KEY=VALUE,… environment of one side; rounds alternate over the sides",
    )
    parser.add_argument("--logs", type=Path, help="copy each run's service logs under here")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sides: list[tuple[str, dict[str, str]]] = args.side or [("base", {})]
    load = [round(os.getloadavg()[0], 1)]
    runs = []
    for n in range(args.rounds * len(sides)):
        label, env = sides[n % len(sides)]
        progress(f"run {n + 1}: {label} {env}")
        logs = args.logs / f"{n + 1}-{label}" if args.logs else None
        run = {"side": label, "env": env, "time": time.strftime("%H:%M")}
        run.update(measure(args, env, logs))
        run["load"] = [load[-1], round(os.getloadavg()[0], 1)]
        load.append(run["load"][1])
        runs.append(run)
    stamp = time.strftime("%Y-%m-%d-%H%M")
    label = f"-{args.label}" if args.label else ""
    reads = list(runs[0]["reads"])
    burst = (
        f"{args.handshakes} handshakes, `config.get` over {CONNECTIONS} WebSockets for "
        f"{args.burst_s:.0f} s, {args.idle_connections} idle WebSockets opened and closed, "
        f"{args.turns} agent turns over `/v1`"
    )
    lines = [
        "# Memory of the default stack after start and after use",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, load average "
        f"{min(load)}–{max(load)}; `python -m bench.memory_after_use "
        f"{' '.join(sys.argv[1:])}`. RSS summed over the stack's processes (MiB; the "
        f"launcher counted, a process that runs several services once): {SETTLE_S:.0f} s "
        f"after all-ready; right after the burst ({burst}); after the quiet spells.",
        "",
        "| time | side | load | config.get requests | " + " | ".join(reads) + " |",
        "|---|---|---|---|" + "---|" * len(reads),
    ]
    for run in runs:
        totals = " | ".join(str(run["totals"][when]) for when in reads)
        lines.append(
            f"| {run['time']} | {run['side']} | {run['load'][0]}–{run['load'][1]} | "
            f"{run['config_get_requests']} | {totals} |"
        )
    lines += ["", "By process (" + " → ".join(reads) + "; Go processes: RSS (anonymous)):", ""]
    for run in runs:
        lines.append(f"- {run['time']} {run['side']}:")
        for name in run["reads"]["after start"]["rss"]:
            steps = []
            for when in reads:
                value = run["reads"][when]
                anon = value["go_anon"].get(name)
                steps.append(f"{value['rss'][name]}" + (f" ({anon})" if anon is not None else ""))
            lines.append(f"  - {name}: " + " → ".join(steps))
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{stamp}-memory-after-use{label}"
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    base.with_suffix(".json").write_text(json.dumps({"load": load, "runs": runs}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
