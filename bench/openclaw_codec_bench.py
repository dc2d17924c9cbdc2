"""P1–P3 through `/openclaw` beside `/ws` in the same run (docs/openclaw.md): the same
requests over the two wire formats of one gateway, through Traefik.

    .venv/bin/python bench/openclaw_codec_bench.py [--quick]

P1 `health` and P2 `config.get` (round-trip p50/p99, req/s with 50 sockets), P3 upgrade →
hello. On `/openclaw`, `health` is OpenClaw's HealthSummary (our `health` plus `agents.list`
and `sessions.list`) and `config.get` is reshaped, so they measure the adapters as well as
the codec. P4 (fan-out) through `/openclaw` is not measured here.
"""

from __future__ import annotations

import json
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

from ws_bench import QUICK, SEED, Bench, latency, ms, pct, rpc, throughput  # noqa: E402
from ws_lean_client import LeanClient, connect_gateway, open_socket  # noqa: E402

RESULTS = REPO / "bench" / "results"


async def connect_openclaw(port: int, token: str) -> LeanClient:
    client = await open_socket("127.0.0.1", port, "/openclaw")
    challenge = await client.recv()
    assert challenge["event"] == "connect.challenge"
    params = {
        "minProtocol": 4,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "scopes": ["operator.admin", "operator.read"],
        "auth": {"token": token},
        # Our own connect field, passed through: no events, so every frame read is a reply
        # (as the /ws clients here).
        "subscribe": [],
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


async def measure(bench: Bench) -> dict[str, Any]:
    await bench.stand_ins()
    count, seconds = (500, 2.0) if QUICK else (3000, 5.0)
    port, token = bench.http_port, bench.token
    ws = [(await connect_gateway("127.0.0.1", port, token, subscribe=[]))[0] for _ in range(50)]
    oc = [await connect_openclaw(port, token) for _ in range(50)]
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": QUICK}
    for name, method in (("P1", "health"), ("P2", "config.get")):
        for path, clients, make in (("/ws", ws, rpc(method)), ("/openclaw", oc, req(method))):
            out[f"{name} {method} {path}"] = {
                **await latency(clients, make, count),
                "req_per_s_50_in_flight": await throughput(clients, make, seconds),
            }
    for client in ws + oc:
        client.close()
    hs = 100 if QUICK else 300
    out["P3 upgrade→hello /ws"] = await handshakes(port, token, False, hs)
    out["P3 upgrade→hello /openclaw"] = await handshakes(port, token, True, hs)
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# /openclaw beside /ws ({results['date']}{', quick' if results['quick'] else ''})",
        "",
        "| measure | p50 / median ms | p99 ms | req/s @50 |",
        "|---|---|---|---|",
    ]
    for key, row in results.items():
        if isinstance(row, dict):
            p50 = row.get("p50_ms", row.get("median_ms"))
            lines.append(
                f"| {key} | {p50} | {row['p99_ms']} | {row.get('req_per_s_50_in_flight', '—')} |"
            )
    return "\n".join(lines) + "\n"


async def main() -> None:
    # Both paths open many sockets from loopback: exempt it from the per-IP upgrade limit
    # (the forwardAuth hop is still taken on every upgrade).
    SEED["limits"] = {"exemptCidrs": ["127.0.0.1/32", "::1/128"]}
    bench = Bench()
    bench.start()
    try:
        results = await measure(bench)
    finally:
        bench.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "openclaw-codec.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "openclaw-codec.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    uvloop.run(main())
