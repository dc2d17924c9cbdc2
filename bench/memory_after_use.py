"""Memory of the default local stack after start and after use: RSS of every process (the
launcher included, a process that runs several services once) after the stack settled
idle, right after a burst of requests, and after a quiet spell (`--late-s`: also after a
longer one). What a process keeps after use is what `bench/openclaw_bench.py`'s idle
figure, read after its run, adds to the after-start one (docs/deployment.md, "After use").

The burst: `config.get` over the WebSocket through Traefik with 50 connections for a few
seconds (thousands of requests; ws-gateway, NATS, the runtime's config reads), then
`/v1/chat/completions` with the `openai` SDK (agent turns: http-api, auth, ratelimit, the
runtime) one after another.

    .venv/bin/python -m bench.memory_after_use [--rounds 2] [--turns 200] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from bench.harness import RESULTS, processes_by_name, progress, rss_kib
from bench.local_stack import BenchStack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ws_lean_client import connect_gateway, throughput  # a sibling

SETTLE_S = 3.0  # as bench/profiles_memory.py: RSS settles for a moment after readiness
# Long enough for a quiet-time heap settle checking every 5 s to have run twice (the one
# tried, docs/deployment.md "After use"), and for the Go processes' background work.
QUIET_S = 12.0
CONNECTIONS = 50


def config_get(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"config.get","params":{},"id":' + str(n).encode() + b"}"


async def ws_burst(stack: BenchStack, seconds: float) -> int:
    clients = [
        (await connect_gateway("127.0.0.1", stack.http_port, stack.token, subscribe=[]))[0]
        for _ in range(CONNECTIONS)
    ]
    try:
        rate = await throughput(clients, config_get, seconds)
    finally:
        for client in clients:
            client.close()
    return round(rate * seconds)


def agent_turns(stack: BenchStack, turns: int) -> None:
    client = OpenAI(base_url=f"{stack.info['http_url']}/v1", api_key=stack.token)
    for n in range(turns):
        reply = client.chat.completions.create(
            model="aisopod/main", messages=[{"role": "user", "content": f"turn {n}"}]
        )
        assert reply.choices[0].message.content, reply


def rss_mib(stack: BenchStack) -> dict[str, float]:
    groups = processes_by_name(stack.pids, stack.proc.pid)
    return {
        name: round(sum(rss_kib(pid) for pid in group) / 1024, 1) for name, group in groups.items()
    }


def measure(burst_s: float, turns: int, late_s: float) -> dict[str, Any]:
    stack = BenchStack.start(with_fake=False)
    try:
        time.sleep(SETTLE_S)  # a settling pause before reading RSS, as profiles_memory
        out: dict[str, Any] = {"after_start": rss_mib(stack)}
        progress(f"config.get over {CONNECTIONS} WebSockets for {burst_s:.0f} s")
        out["config_get_requests"] = asyncio.run(ws_burst(stack, burst_s))
        progress(f"{turns} agent turns over /v1/chat/completions")
        agent_turns(stack, turns)
        out["after_burst"] = rss_mib(stack)
        time.sleep(QUIET_S)  # the quiet spell itself is what is measured
        out["after_quiet"] = rss_mib(stack)
        if late_s > QUIET_S:
            time.sleep(late_s - QUIET_S)
            out["after_late"] = rss_mib(stack)
    finally:
        stack.stop()
    for key in ("after_start", "after_burst", "after_quiet", "after_late"):
        if key in out:
            out[f"{key}_total"] = round(sum(out[key].values()), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--burst-s", type=float, default=5.0)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--late-s", type=float, default=0.0, help="also read after this long quiet")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = [round(os.getloadavg()[0], 1)]
    runs = []
    for n in range(args.rounds):
        progress(f"round {n + 1}")
        runs.append(measure(args.burst_s, args.turns, args.late_s))
        load.append(round(os.getloadavg()[0], 1))
    stamp = time.strftime("%Y-%m-%d-%H%M")
    label = f"-{args.label}" if args.label else ""
    lines = [
        "# Memory of the default stack after start and after use",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, load average "
        f"{min(load)}–{max(load)}; {args.rounds} rounds; `python -m bench.memory_after_use` "
        f"{' '.join(sys.argv[1:])}. RSS summed over the stack's processes (MiB): "
        f"{SETTLE_S:.0f} s after all-ready; right after a burst (`config.get` over "
        f"{CONNECTIONS} WebSockets for {args.burst_s:.0f} s, then {args.turns} agent turns "
        f"over `/v1`); after {QUIET_S:.0f} s quiet.",
        "",
        "| round | config.get requests | after start | after burst | after quiet |",
        "|---|---|---|---|---|",
    ]
    for n, run in enumerate(runs, 1):
        lines.append(
            f"| {n} | {run['config_get_requests']} | {run['after_start_total']} | "
            f"{run['after_burst_total']} | {run['after_quiet_total']} |"
        )
    lines += ["", "By process, last round (after start → after burst → after quiet):", ""]
    last = runs[-1]
    for name in last["after_start"]:
        lines.append(
            f"- {name}: {last['after_start'][name]} → {last['after_burst'][name]} → "
            f"{last['after_quiet'][name]}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{stamp}-memory-after-use{label}"
    base.with_suffix(".md").write_text("\n".join(lines) + "\n")
    base.with_suffix(".json").write_text(json.dumps({"load": load, "runs": runs}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
