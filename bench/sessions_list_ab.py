"""`sessions.list` answered at the edge against the same read answered by the owner, each
beside `health`, in one run of the local bench stack (docs/ws-gateway.md, `sessions.list`).

The stack gets `--sessions` sessions (`chat.inject`: an entry with a last message, no
model call). Then, in rounds, the live setting `gateway.sessionsListedMax` switches
ws-gateway between answering `sessions.list` itself (the default cap) and sending it to the
runtime (cap 0; the runtime answers from its in-memory copy). In each block: `sessions.list`
and `health` one request of each in turn on one connection (the same moments of load for
both), then each for `--seconds` with 50 in flight. Blocks alternate, so a loaded machine
shows in both modes alike; compare within a block, not absolute figures.

    .venv/bin/python -m bench.sessions_list_ab [--sessions 100] [--rounds 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.harness import RESULTS, load_average, machine_name, progress
from bench.local_stack import BenchStack
from bench.openclaw_bench import IN_FLIGHT, Aisopod, next_reply, pct
from bench.ws_lean_client import LeanClient, throughput

MODES = {"edge": 10_000, "owner": 0}  # gateway.sessionsListedMax


async def call(d: Aisopod, client: LeanClient, method: str, params: dict[str, Any]) -> Any:
    client.send(d.request(method, params)(0))
    reply = orjson.loads(await next_reply(d, client))
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def counters(stack: BenchStack) -> tuple[float, float]:
    """(answered at the edge, sent to the owner) summed over the ws-gateway replicas."""
    edge = fallback = 0.0
    for url in stack.backend_urls("ws-gateway"):
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if line.startswith("aisopod_ws_edge_reads_total "):
                edge += float(line.split()[1])
            elif line.startswith("aisopod_ws_edge_fallbacks_total "):
                fallback += float(line.split()[1])
    return edge, fallback


async def switch(d: Aisopod, client: LeanClient, mode: str) -> None:
    """Set the cap, then poll until a `sessions.list` is answered the way `mode` says."""
    current = await call(d, client, "config.get", {})
    patch = {"gateway": {"sessionsListedMax": MODES[mode]}}
    await call(d, client, "config.patch", {"patch": patch, "baseHash": current["hash"]})
    deadline = time.monotonic() + 30
    while True:
        before = counters(d.stack)
        await call(d, client, "sessions.list", {})
        after = counters(d.stack)
        at_edge = after[0] > before[0]
        if at_edge == (mode == "edge"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"ws-gateway never switched to {mode}")
        await asyncio.sleep(0.1)


async def block(
    d: Aisopod, client: LeanClient, clients: list[LeanClient], n: int, seconds: float
) -> dict[str, Any]:
    listing, health = d.request("sessions.list", {}), d.request("health", {})
    ours: list[float] = []
    base: list[float] = []
    for i in range(n):
        for make, samples in ((listing, ours), (health, base)):
            start = time.perf_counter()
            client.send(make(i))
            await next_reply(d, client)
            samples.append(time.perf_counter() - start)
    return {
        "load": round(load_average(), 1),
        "p50_ms": round(statistics.median(ours) * 1000, 3),
        "p99_ms": round(pct(ours, 0.99) * 1000, 3),
        "health_p50_ms": round(statistics.median(base) * 1000, 3),
        "health_p99_ms": round(pct(base, 0.99) * 1000, 3),
        "rps": round(await throughput(clients, listing, seconds, is_reply=d.is_reply)),
        "health_rps": round(await throughput(clients, health, seconds, is_reply=d.is_reply)),
    }


async def run(sessions: int, rounds: int, n: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_name(),
        "sessions": sessions,
        "load_start": round(load_average(), 1),
        "blocks": [],
    }
    stack = BenchStack.start(with_fake=False)
    try:
        d = Aisopod("aisopod", "127.0.0.1", stack.http_port, stack.token)
        d.stack = stack
        client = await d.connect()
        progress(f"storing {sessions} sessions")
        for k in range(sessions):
            key = f"agent:main:bench-{k:05d}"
            await call(d, client, "chat.inject", {"sessionKey": key, "message": f"note {k}"})
        clients = [await d.connect() for _ in range(IN_FLIGHT)]
        for r in range(rounds):
            for mode in ("edge", "owner") if r % 2 == 0 else ("owner", "edge"):
                progress(f"round {r + 1}: {mode}")
                await switch(d, client, mode)
                row = await block(d, client, clients, n, seconds)
                result["blocks"].append({"round": r + 1, "mode": mode, **row})
        for c in [client, *clients]:
            c.close()
    finally:
        stack.stop()
    result["load_end"] = round(load_average(), 1)
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# `sessions.list` at the edge vs the owner — {r['date']} on {r['machine']}",
        "",
        f"Local bench stack through Traefik, {r['sessions']} sessions stored, `sessions.list "
        "{}` (all of them, newest first). Load average "
        f"{r['load_start']} at the start, {r['load_end']} at the end, on 2 shared CPUs: "
        "compare within a block (same minutes), not across blocks.",
        "",
        "| round | answered by | load | p50 | p99 | req/s (50 in flight) | `health` p50 | "
        "`health` p99 | `health` req/s | p50 vs `health` |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b in r["blocks"]:
        over = b["p50_ms"] / b["health_p50_ms"] - 1
        lines.append(
            f"| {b['round']} | {b['mode']} | {b['load']} | {b['p50_ms']} ms | {b['p99_ms']} ms "
            f"| {b['rps']} | {b['health_p50_ms']} ms | {b['health_p99_ms']} ms "
            f"| {b['health_rps']} | {over:+.0%} |"
        )
    edge = [b for b in r["blocks"] if b["mode"] == "edge"]
    owner = [b for b in r["blocks"] if b["mode"] == "owner"]
    if edge and owner:
        lines += [
            "",
            "Medians over the rounds: edge p50 "
            f"{statistics.median(b['p50_ms'] for b in edge)} ms, "
            f"{statistics.median(b['rps'] for b in edge)} req/s; owner p50 "
            f"{statistics.median(b['p50_ms'] for b in owner)} ms, "
            f"{statistics.median(b['rps'] for b in owner)} req/s.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    result = asyncio.run(run(args.sessions, args.rounds, args.requests, args.seconds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d-%H%M')}-sessions-list-ab-{result['machine']}"
    (out / f"{stem}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
