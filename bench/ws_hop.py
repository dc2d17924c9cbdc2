"""What the Traefik hop costs a WebSocket round trip: `health` and `config.get` (both answered
by ws-gateway itself) through Traefik and straight to the ws-gateway replica (with the edge
proof Traefik adds), on two connections of one local stack, in alternating blocks.

    .venv/bin/python -m bench.ws_hop [--rounds 6] [--count 300] [--out STEM]

Each block is `count` sequential requests on one connection after 50 unmeasured ones; the
rounds take the paths and methods in turn, so every figure meets the same moments of
machine load. Prints the median over rounds of each block's p50 (ms) with the load
average; with `--out`, keeps the whole result as bench/results/<STEM>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import orjson

from bench.harness import load_average, progress, write_ab_result
from bench.local_stack import BenchStack
from bench.ws_lean_client import LeanClient, connect_gateway

METHODS = ("health", "config.get")
WARMUP = 50


async def block(client: LeanClient, method: str, count: int, first_id: int) -> float:
    """p50 (ms) of `count` sequential requests of `method`."""
    samples = []
    for n in range(first_id, first_id + count):
        started = time.perf_counter()
        client.send(orjson.dumps({"jsonrpc": "2.0", "id": n, "method": method}))
        while (await client.recv()).get("id") != n:
            pass  # an event: not this request's reply
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


async def measure(stack: BenchStack, rounds: int, count: int) -> dict[str, Any]:
    edge = (stack.state_dir / "secrets" / "edge-secret").read_text().strip()
    replica = int(stack.backend_urls("ws-gateway")[0].rsplit(":", 1)[1])
    paths = {
        "through Traefik": await connect_gateway(
            "127.0.0.1", stack.http_port, stack.token, subscribe=[]
        ),
        "straight to ws-gateway": await connect_gateway(
            "127.0.0.1", replica, stack.token, subscribe=[], headers={"X-Aisopod-Edge": edge}
        ),
    }
    p50s: dict[str, list[float]] = {}
    ids = 1
    loads = [load_average()]
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(paths)[::-1]
        for path in order:
            client = paths[path][0]
            for method in METHODS:
                await block(client, method, WARMUP, ids)
                ids += WARMUP
                p50s.setdefault(f"{path}: {method}", []).append(
                    round(await block(client, method, count, ids), 4)
                )
                ids += count
        loads.append(load_average())
        progress(f"round {r + 1} of {rounds}")
    for client, _ in paths.values():
        client.close()
    summary = {name: round(statistics.median(values), 3) for name, values in p50s.items()}
    summary["load average"] = f"{min(loads):.1f}–{max(loads):.1f}"
    return {"rounds": rounds, "count": count, "p50_ms_per_round": p50s, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--out", default=None, help="results file stem in bench/results")
    args = parser.parse_args()
    stack = BenchStack.start(with_fake=False)
    try:
        result = asyncio.run(measure(stack, args.rounds, args.count))
    finally:
        stack.stop()
    write_ab_result(result, args.out)


if __name__ == "__main__":
    main()
