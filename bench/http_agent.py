"""P7: an agent-mode chat completion with the `echo` provider, end to end (docs/quality.md).

    .venv/bin/python bench/http_agent.py [--requests 300]

Starts a private full stack (bench/http_stack.py) and sends non-streamed
`/v1/chat/completions` with `model: aisopod/main` one after another: through Traefik
(admin token; what a client sees) and straight to an http-api replica with the admin
token and the stack's edge proof, as Traefik forwards it (the gateway's own share,
auth's and ratelimit's NATS answers included). Beside them, the
references measured in the same run: `/health` through Traefik (the proxy hop alone), a
raw NATS request/reply to the runtime (nats.micro PING, the bus hop alone), and the runtime
alone (`agent` over NATS until its `chat.event` final). Target: p50 ≤ 5 ms end to end.
Results: bench/results/http_agent.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import nats
import orjson

from aisopod.settings import nats_servers
from aisopod_fake_upstream.harness import FakeUpstream
from aisopod_http_api.upstream.pool import UpstreamPool, parse_base_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_proxy import RESULTS, machine  # siblings, not a package
from http_stack import PrivateStack

FAKE_KEY = "sk-bench"


def _request(base: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple:
    origin, prefix = parse_base_url(base)
    method = "POST" if body is not None else "GET"
    lines = [f"{method} {prefix}{path} HTTP/1.1", f"host: {origin.authority}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return origin, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def _series(origin: Any, request: bytes, count: int) -> dict[str, float]:
    pool = UpstreamPool()
    samples = []
    for index in range(count + 20):
        started = time.perf_counter()
        exchange = await pool.send(origin, request)
        body = await exchange.read_all(1 << 20)
        if exchange.status != 200:
            raise RuntimeError(f"HTTP {exchange.status}: {body[:300]!r}")
        if index >= 20:  # the first ones warm connections and caches
            samples.append(time.perf_counter() - started)
    await pool.close()
    return _percentiles(samples)


NATS_IDENTITY = {
    "Aisopod-Principal": "bench",
    "Aisopod-Role": "operator",
    "Aisopod-Scopes": "operator.admin",
    "Aisopod-Auth-Method": "token",
}


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples.sort()
    return {
        "p50_ms": samples[len(samples) // 2] * 1000,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
    }


async def _nats_references(stack_dir: Path, nats_url: str, count: int) -> dict[str, Any]:
    """The bus hop alone (nats.micro's PING of the runtime), and the runtime alone: `agent`
    called over NATS
    and its `chat.event` final awaited, no HTTP anywhere (the part P7 cannot shave)."""
    password = (stack_dir / "secrets" / "nats-admin.password").read_text().strip()
    nc = await nats.connect(nats_servers(nats_url), user="admin", password=password)
    finals: dict[str, asyncio.Future[None]] = {}

    async def on_event(msg: Any) -> None:
        event = orjson.loads(msg.data)
        waiter = finals.get(event.get("sessionKey", ""))
        if waiter is not None and event.get("state") == "final" and not waiter.done():
            waiter.set_result(None)

    sub = await nc.subscribe("aisopod.evt.chat.event", cb=on_event)
    bus, run = [], []
    for index in range(count + 20):
        started = time.perf_counter()
        await nc.request("$SRV.PING.runtime", b"", timeout=5)  # answered by nats.micro itself
        if index >= 20:
            bus.append(time.perf_counter() - started)
        key = f"agent:main:bench-{index}"
        finals[key] = asyncio.get_running_loop().create_future()
        params = orjson.dumps({"message": "hello bench", "agentId": "main", "sessionKey": key})
        started = time.perf_counter()
        await nc.request("aisopod.rpc.agent", params, timeout=10, headers=NATS_IDENTITY)
        await asyncio.wait_for(finals[key], 10)
        del finals[key]
        if index >= 20:
            run.append(time.perf_counter() - started)
    await sub.unsubscribe()
    await nc.close()
    return {
        "ref: NATS request/reply (PING)": _percentiles(bus),
        "ref: runtime alone (NATS)": _percentiles(run),
    }


async def measure(
    stack: Any, stack_dir: Path, nats_url: str, count: int, rounds: int = 1
) -> dict[str, Any]:
    """Every series once per round, rounds one after another; per series the best round
    (a shared machine only ever adds time), the worst p50 kept beside it."""
    runs = [await _round(stack, stack_dir, nats_url, count) for _ in range(rounds)]
    out = {}
    for name in runs[0]:
        out[name] = {
            "p50_ms": min(r[name]["p50_ms"] for r in runs),
            "p99_ms": min(r[name]["p99_ms"] for r in runs),
            "p50_ms_worst_round": max(r[name]["p50_ms"] for r in runs),
        }
        print(f"{name:<28} p50 {out[name]['p50_ms']:.3f} ms  p99 {out[name]['p99_ms']:.3f} ms")
    return out


async def _round(stack: Any, stack_dir: Path, nats_url: str, count: int) -> dict[str, Any]:
    body = orjson.dumps(
        {"model": "aisopod/main", "messages": [{"role": "user", "content": "hello bench"}]}
    )
    token = {"authorization": f"Bearer {stack.admin_token}"}
    proof = (stack_dir / "secrets" / "edge-secret").read_text().strip()
    through_edge = {**token, "x-aisopod-edge": proof}
    out: dict[str, Any] = {}
    cases = {
        "traefik": _request(stack.http_url + "/v1", "/chat/completions", token, body),
        "http-api": _request(
            stack.http_api_urls[0] + "/v1", "/chat/completions", through_edge, body
        ),
        "ref: /health via traefik": _request(stack.http_url, "/health", {}, None),
    }
    for name, (origin, request) in cases.items():
        out[name] = await _series(origin, request, count)
    out.update(await _nats_references(stack_dir, nats_url, count))
    return out


def figures(results: dict[str, Any]) -> list[Any]:
    """The rows of the common report (`python -m bench`, bench/harness.py)."""
    from bench.harness import Figure

    health = results["ref: /health via traefik"]
    bus = results["ref: NATS request/reply (PING)"]
    run = results["ref: runtime alone (NATS)"]
    refs = (
        f"the runtime alone (agent over NATS) {run['p50_ms']:.3f} ms; /health via Traefik"
        f" {health['p50_ms']:.3f} ms; NATS PING {bus['p50_ms']:.3f} ms"
    )
    rows = []
    for name, label in (("traefik", "via Traefik"), ("http-api", "http-api replica direct")):
        r = results[name]
        rows.append(
            Figure(
                "P7",
                f"agent-mode /v1/chat/completions (`aisopod/main`, echo), {label}, p50 / p99",
                f"{r['p50_ms']:.3f} / {r['p99_ms']:.3f} ms",
                refs,
                "≤ 5 ms p50",
                r["p50_ms"] <= 5,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many")
    args = parser.parse_args()
    info = machine()
    import uvloop

    with (
        FakeUpstream(api_key=FAKE_KEY, subprocess=True) as fake,
        PrivateStack(fake.base_url, FAKE_KEY) as stack,
    ):
        results = uvloop.run(
            measure(stack, stack.state_dir, stack.nats_url, args.requests, args.rounds)
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "P7 agent-mode completion (echo)", "machine": info, "results": results}
    (RESULTS / "http_agent.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# P7: agent-mode /v1/chat/completions with the echo provider",
        "",
        f"Machine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']} ({info['note']}). "
        "Target: p50 ≤ 5 ms end to end. Sequential requests, non-streamed; load average at "
        f"the start: {info['load']}.",
        "",
        f"Best of {args.rounds} rounds.",
        "",
        "| path | p50 ms | p99 ms | p50 ms, worst round |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} | {v['p50_ms_worst_round']:.3f} |"
            for k, v in results.items()
        ),
    ]
    (RESULTS / "http_agent.md").write_text("\n".join(lines) + "\n")
    print(f"results: {RESULTS / 'http_agent.json'}")


if __name__ == "__main__":
    main()
