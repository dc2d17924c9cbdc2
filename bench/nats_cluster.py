"""What a 3-node NATS cluster (R3) costs against one node (R1), and how long a failover stalls.

`.venv/bin/python bench/nats_cluster.py [--count 200]` starts two local stacks in turn
(`--nats-cluster 1` and `--nats-cluster 3`, one runtime each), and on each times, over one
WebSocket through Traefik, `config.get` (a runtime read of its cached config: NATS request/
reply only) and `chat.send` with an idempotency key (dedupe KV create, session and run
records, the transcript append: R3 writes wait for a quorum). Then, on the R3 stack, one
client sends `chat.send` back to back while the leader of `TRANSCRIPTS` is killed (-9):
the longest single request is the stall a client sees in a failover (none may fail).
Writes `bench/results/<date>-<machine>-nats-cluster.json` and `.md`. Not part of
`python -m bench` (no goal of docs/quality.md); docs/deployment.md, "A NATS cluster".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aisopod.settings import nats_servers  # noqa: E402
from aisopod_ops.launcher.spawn import start_local_stack, stop_local_stack  # noqa: E402
from bench.harness import RESULTS, latency_summary, machine_info, progress  # noqa: E402
from tests.support.ws_client import WsClient  # noqa: E402

FAILOVER_AFTER_S = 2.0  # load before the kill
FAILOVER_TAIL_S = 4.0  # load after the node is back


async def timed_calls(ws: WsClient, count: int) -> dict[str, Any]:
    session = f"agent:main:bench-{uuid.uuid4().hex[:8]}"
    reads: list[float] = []
    sends: list[float] = []
    for n in range(count):
        started = time.perf_counter()
        await ws.call("config.get", {})
        reads.append(time.perf_counter() - started)
        params = {"sessionKey": session, "message": f"m{n}", "idempotencyKey": f"{session}-{n}"}
        started = time.perf_counter()
        sent = await ws.call("chat.send", params, timeout=30)
        sends.append(time.perf_counter() - started)
        await ws.call("agent.wait", {"runId": sent["runId"], "timeoutMs": 10_000}, timeout=30)
    return {"config.get": latency_summary(reads), "chat.send": latency_summary(sends)}


async def failover_stall(info: dict[str, Any], state: Path) -> dict[str, Any]:
    password = (state / "secrets" / "nats-admin.password").read_text().strip()
    nc = await nats.connect(nats_servers(info["nats_url"]), user="admin", password=password)
    stop = asyncio.Event()
    longest = 0.0
    failures: list[str] = []
    calls = 0

    async def load() -> None:
        nonlocal longest, calls
        session = f"agent:main:stall-{uuid.uuid4().hex[:8]}"
        async with await WsClient.connect(info["ws_url"], token=info["admin_token"]) as ws:
            n = 0
            while not stop.is_set():
                params = {"sessionKey": session, "message": f"s{n}", "idempotencyKey": f"s-{n}"}
                started = time.perf_counter()
                try:
                    await ws.call("chat.send", params, timeout=60)
                except Exception as exc:
                    failures.append(repr(exc))
                longest = max(longest, time.perf_counter() - started)
                calls += 1
                n += 1

    task = asyncio.create_task(load())
    try:
        await asyncio.sleep(FAILOVER_AFTER_S)
        reply = await nc.request("$JS.API.STREAM.INFO.TRANSCRIPTS", b"", timeout=5)
        leader = json.loads(reply.data)["cluster"]["leader"]
        index = int(leader.rsplit("-", 1)[1]) - 1
        os.kill(info["pids"]["nats"][index], signal.SIGKILL)
        killed = time.monotonic()
        progress(f"killed {leader}; load goes on")
        await asyncio.sleep(FAILOVER_TAIL_S + 10.0)  # an election takes 4-9 s
    finally:
        stop.set()
        await task
        await nc.close()
    return {
        "killed": leader,
        "longest_request_ms": round(longest * 1000, 1),
        "requests": calls,
        "failed": failures[:5],
        "observed_s": round(time.monotonic() - killed, 1),
    }


async def measure(nodes: int, count: int, base: Path) -> dict[str, Any]:
    state = base / f"r{nodes}"
    state.mkdir()
    progress(f"stack with {nodes} NATS node(s)")
    proc, info = start_local_stack(
        state, "--nats-cluster", str(nodes), "--log-level", "WARNING", timeout=150
    )
    try:
        async with await WsClient.connect(info["ws_url"], token=info["admin_token"]) as ws:
            await timed_calls(ws, 20)  # warm-up: caches, connections
            figures = await timed_calls(ws, count)
        if nodes > 1:
            figures["failover"] = await failover_stall(info, state)
        return figures
    finally:
        stop_local_stack(proc)


def write(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d')}-{result['machine']['name']}-nats-cluster"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    r1, r3 = result["R1"], result["R3"]
    lines = [
        "# NATS cluster: R3 against R1 (bench/nats_cluster.py)",
        "",
        f"{result['count']} calls each over one WebSocket via Traefik; load average "
        f"{result['machine']['load_avg_at_start']} at start.",
        "",
        "| measure | R1 p50 / p99 ms | R3 p50 / p99 ms |",
        "|---|---|---|",
    ]
    for name in ("config.get", "chat.send"):
        a, b = r1[name], r3[name]
        lines.append(f"| {name} | {a['p50_ms']} / {a['p99_ms']} | {b['p50_ms']} / {b['p99_ms']} |")
    fail = r3["failover"]
    lines += [
        "",
        f"Failover (`kill -9` of the TRANSCRIPTS leader {fail['killed']}, chat.send back to "
        f"back): longest request {fail['longest_request_ms']} ms over {fail['requests']} "
        f"requests, failed: {len(fail['failed'])}.",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    return RESULTS / f"{stem}.md"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": machine_info(), "count": args.count}
    with tempfile.TemporaryDirectory(prefix="aisopod-nats-cluster-") as tmp:
        base = Path(tmp)
        result["R1"] = await measure(1, args.count, base)
        result["R3"] = await measure(3, args.count, base)
    print(write(result).read_text())


if __name__ == "__main__":
    asyncio.run(main())
