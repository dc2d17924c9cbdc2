"""P1–P4 through `/openclaw` beside `/ws` in the same run (docs/openclaw.md): the same
requests and events over the two wire formats of one gateway.

    .venv/bin/python bench/openclaw_codec_bench.py [--quick]

P1 `health` and P2 `config.get` through Traefik (round-trip p50/p99, req/s with 50
sockets), P3 upgrade → hello through Traefik, P4 one `cron.event` fanned out to 1,000
clients of one replica (reached directly, as in ws_bench.py). On `/openclaw`, `health` is
OpenClaw's HealthSummary (built at the edge from the replicas and the sessions index) and
`config.get` is reshaped, so they measure the adapters as well as the codec; P4's event is
renamed (`cron`) with its payload spliced as bytes. The load average is recorded before and
after: on a shared machine a figure under load proves little.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ws_bench import QUICK, SEED, Bench, fanout, latency, ms, pct, rpc, throughput  # noqa: E402
from ws_lean_client import LeanClient, connect_gateway, open_socket  # noqa: E402

RESULTS = REPO / "bench" / "results"


async def connect_openclaw(
    port: int,
    token: str,
    *,
    subscribe: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> LeanClient:
    client = await open_socket("127.0.0.1", port, "/openclaw", headers=headers)
    challenge = await client.recv()
    assert challenge["event"] == "connect.challenge"
    params = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "scopes": ["operator.admin", "operator.read"],
        "auth": {"token": token},
        # Our own connect field, passed through: no events unless asked, so every frame
        # read is a reply (as the /ws clients here).
        "subscribe": subscribe or [],
    }
    client.send(orjson.dumps({"type": "req", "id": "c", "method": "connect", "params": params}))
    hello = await client.recv()
    if not hello.get("ok"):
        raise RuntimeError(f"handshake failed: {hello}")
    return client


def req(method: str) -> Any:
    head = b'{"type":"req","method":"' + method.encode() + b'","params":{},"id":"'
    return lambda n: head + str(n).encode() + b'"}'


async def handshakes(port: int, token: str, openclaw: bool, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        if openclaw:
            client = await connect_openclaw(port, token)
        else:
            client = (await connect_gateway("127.0.0.1", port, token, subscribe=[]))[0]
        samples.append(time.perf_counter() - start)
        client.close()
    return {"median_ms": ms(statistics.median(samples)), "p99_ms": ms(pct(samples, 0.99))}


ROUNDS = 1 if QUICK else 3
"""Each measure runs this many rounds, the two paths alternating, and reports each figure's
median over the rounds (all rounds are in the JSON): on a shared machine the load drifts
within a run, and alternating keeps that drift from favouring one path."""


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rounds[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in rounds)
        else:
            out[key] = value
    return out | {"rounds": rounds}


async def measure(bench: Bench) -> dict[str, Any]:
    await bench.stand_ins()
    count, seconds = (500, 2.0) if QUICK else (3000, 5.0)
    port, token = bench.http_port, bench.token
    ws = [(await connect_gateway("127.0.0.1", port, token, subscribe=[]))[0] for _ in range(50)]
    oc = [await connect_openclaw(port, token) for _ in range(50)]
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": QUICK,
        "rounds": ROUNDS,
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for name, method in (("P1", "health"), ("P2", "config.get")):
        paths = (("/ws", ws, rpc(method)), ("/openclaw", oc, req(method)))
        for path, clients, make in paths:
            # Warm: the first `health` on a fresh stack asks the owner, which stores the
            # default agent; from then on the edge answers (docs/openclaw.md).
            await latency(clients, make, 100)
            clients[0].send(make(0))
            out[f"reply bytes {method} {path}"] = len(orjson.dumps(await clients[0].recv()))
        for _ in range(ROUNDS):
            for path, clients, make in paths:
                runs.setdefault(f"{name} {method} {path}", []).append(
                    {
                        **await latency(clients, make, count),
                        "req_per_s_50_in_flight": await throughput(clients, make, seconds),
                    }
                )
    for client in ws + oc:
        client.close()
    hs = 100 if QUICK else 300
    for _ in range(ROUNDS):
        for path in ("/ws", "/openclaw"):
            runs.setdefault(f"P3 upgrade→hello {path}", []).append(
                await handshakes(port, token, path == "/openclaw", hs)
            )
    for _ in range(ROUNDS):
        for path in ("/ws", "/openclaw"):
            clients = await fanout_clients(bench, path == "/openclaw", 1000)
            runs.setdefault(f"P4 1 event → 1000 clients {path}", []).append(
                await fanout(bench, clients)
            )
            for client in clients:
                client.close()
    return out | {key: medians(rounds) for key, rounds in runs.items()}


async def fanout_clients(bench: Bench, openclaw: bool, n: int) -> list[LeanClient]:
    """`n` clients of the first replica subscribed to `cron.event`, 100 dialling at once."""
    port, events = bench.replicas[0], ["cron.event"]
    clients: list[LeanClient] = []
    for _ in range(0, n, 100):
        if openclaw:
            batch = [
                connect_openclaw(port, bench.token, subscribe=events, headers=bench.edge)
                for _ in range(100)
            ]
            clients.extend(await asyncio.gather(*batch))
        else:
            pairs = await asyncio.gather(
                *(
                    connect_gateway(
                        "127.0.0.1", port, bench.token, subscribe=events, headers=bench.edge
                    )
                    for _ in range(100)
                )
            )
            clients.extend(c for c, _ in pairs)
    return clients


def markdown(results: dict[str, Any]) -> str:
    load = results["load_average"]
    lines = [
        f"# /openclaw beside /ws ({results['date']}{', quick' if results['quick'] else ''})",
        "",
        f"Machine: {results['machine']['cpus']} CPUs, {results['machine']['platform']}. "
        f"Load average (1/5/15 min) before: {load['before']}, after: {load['after']} "
        "(a shared machine: compare the two paths of one run, not runs).",
        "",
        f"Each figure is the median of {results.get('rounds', 1)} round(s), the two paths "
        "alternating.",
        "",
        "| measure | p50 / median ms | p99 ms | req/s @50 |",
        "|---|---|---|---|",
    ]
    for key, row in results.items():
        if isinstance(row, dict) and "p99_ms" in row:
            p50 = row.get("p50_ms", row.get("median_ms"))
            lines.append(
                f"| {key} | {p50} | {row['p99_ms']} | {row.get('req_per_s_50_in_flight', '—')} |"
            )
    sizes = [f"{k.removeprefix('reply bytes ')}: {v}" for k, v in results.items() if "bytes" in k]
    lines += ["", "Reply sizes (bytes): " + ", ".join(sizes) + "."]
    lines += [
        "",
        "| fan-out | last delivery p50 ms | p99 ms | burst frames/s | not delivered |",
        "|---|---|---|---|---|",
    ]
    for key, row in results.items():
        if isinstance(row, dict) and "burst_delivered_frames_per_s" in row:
            lost = [
                r.get("spaced_events_not_delivered_to_all", 0) + r.get("burst_frames_missing", 0)
                for r in row.get("rounds", [row])
            ]
            lines.append(
                f"| {key} | {row['last_delivery_p50_ms']} | {row['last_delivery_p99_ms']} "
                f"| {row['burst_delivered_frames_per_s']} | {sum(lost)} |"
            )
    return "\n".join(lines) + "\n"


async def main() -> None:
    # Both paths open many sockets from loopback: exempt it from the per-IP upgrade limit
    # (the forwardAuth hop is still taken on every upgrade).
    SEED["limits"] = {"exemptCidrs": ["127.0.0.1/32", "::1/128"]}
    bench = Bench()
    bench.start()
    before = os.getloadavg()
    try:
        results = await measure(bench)
    finally:
        bench.stop()
    results["load_average"] = {
        "before": [round(x, 2) for x in before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "openclaw-codec.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "openclaw-codec.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    uvloop.run(main())
