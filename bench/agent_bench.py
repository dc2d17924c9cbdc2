"""P7: an agent-mode completion with the offline `echo` provider, end to end (quality.md).

- Over WebSocket through Traefik: `agent {message, sessionKey, wait: true}`, the whole
  turn (run record, lane, transcript, provider, events) until its final result, one turn
  after another in one session. Reference, same socket, same run: `config.get`, a
  runtime-served call without a turn (the floor under any agent call).
- Over HTTP through Traefik, when the stack's http-api serves `/v1`: the same turn as
  `POST /v1/chat/completions` with model `aisopod/main`; reference, same client: a
  completion proxied to the fake upstream (`fake/fake-small`, P6's fast path).

The WebSocket client is the lean one of the ws benchmarks (bench/ws_lean_client.py).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import orjson

from bench.harness import Figure, latency_summary, progress
from bench.local_stack import BenchStack
from bench.ws_lean_client import LeanClient, connect_gateway


async def _round_trips(client: LeanClient, make: Any, count: int) -> list[float]:
    samples = []
    for n in range(count):
        request_id = f"p7-{n}"
        started = time.perf_counter()
        client.send(make(request_id))
        while True:
            reply = await client.recv(timeout=30)
            if reply.get("id") == request_id:
                break
        if "error" in reply:
            raise RuntimeError(f"P7: {reply['error']}")
        samples.append(time.perf_counter() - started)
    return samples


async def over_ws(stack: BenchStack, count: int) -> dict[str, Any]:
    client, _ = await connect_gateway("127.0.0.1", stack.http_port, stack.token, subscribe=[])
    session = f"agent:main:bench-p7-{uuid.uuid4().hex[:8]}"

    def turn(request_id: str) -> bytes:
        params = {"message": f"turn {request_id}", "sessionKey": session, "wait": True}
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": "agent", "params": params}
        )

    def config_get(request_id: str) -> bytes:
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "config.get"})

    try:
        await _round_trips(client, turn, 20)  # warm: session, lane, provider
        before = await nats_messages(stack)
        turns = await _round_trips(client, turn, count)
        after = await nats_messages(stack)
        floor = await _round_trips(client, config_get, count)
    finally:
        client.close()
    return {
        "agent_turn_echo": latency_summary(turns),
        "reference_config_get": latency_summary(floor),
        # What one turn costs the bus (all clients of nats-server, so an upper bound).
        "nats_messages_in_per_turn": round((after[0] - before[0]) / count, 1),
        "nats_messages_out_per_turn": round((after[1] - before[1]) / count, 1),
    }


async def nats_messages(stack: BenchStack) -> tuple[int, int]:
    """nats-server's in/out message counters (its monitoring endpoint, /varz)."""
    conf = (stack.state_dir / "nats" / "nats.conf").read_text()
    address = re.search(r'^http: "([^"]+)"', conf, re.M)
    if address is None:
        return (0, 0)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        varz = (await client.get(f"http://{address.group(1)}/varz")).json()
    return int(varz["in_msgs"]), int(varz["out_msgs"])


async def over_http(stack: BenchStack, count: int) -> dict[str, Any] | None:
    url = f"{stack.info['http_url']}/v1/chat/completions"
    headers = {
        "Authorization": f"Bearer {stack.token}",
        "x-aisopod-session-key": f"agent:main:bench-p7h-{uuid.uuid4().hex[:8]}",
    }

    def body(model: str, n: int) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": f"turn {n}"}]}

    async with httpx.AsyncClient(timeout=30, trust_env=False, headers=headers) as client:
        probe = await client.post(url, json=body("aisopod/main", 0))
        if probe.status_code != 200:
            return None

        async def timed(model: str) -> list[float]:
            samples = []
            for n in range(count + 20):
                started = time.perf_counter()
                response = await client.post(url, json=body(model, n))
                if response.status_code != 200:
                    raise RuntimeError(f"P7 {model}: HTTP {response.status_code}")
                if n >= 20:  # the first ones warm connections and caches
                    samples.append(time.perf_counter() - started)
            return samples

        turns = await timed("aisopod/main")
        proxied = await timed("fake/fake-small") if stack.fake is not None else []
    out: dict[str, Any] = {"agent_turn_echo": latency_summary(turns)}
    if proxied:
        out["reference_proxied_to_fake"] = latency_summary(proxied)
    return out


async def run(stack: BenchStack, quick: bool) -> tuple[dict[str, Any], list[Figure], list[str]]:
    count = 100 if quick else 300
    progress(f"P7 agent turns over WebSocket ({count})")
    ws = await over_ws(stack, count)
    progress("P7 agent turns over HTTP /v1")
    http = await over_http(stack, count)
    ws_turn, ws_floor = ws["agent_turn_echo"], ws["reference_config_get"]
    figures = [
        Figure(
            "P7",
            "agent turn, `echo` provider, WebSocket `agent` (wait) via Traefik, p50 / p99",
            f"{ws_turn['p50_ms']} / {ws_turn['p99_ms']} ms",
            f"`config.get` on the same socket {ws_floor['p50_ms']} / {ws_floor['p99_ms']} ms"
            f" (a turn: {ws['nats_messages_in_per_turn']} NATS messages in)",
            "≤ 5 ms p50",
            ws_turn["p50_ms"] <= 5,
        )
    ]
    notes = []
    if http is None:
        notes.append("P7 over HTTP not measured: /v1/chat/completions is not served by this stack")
    else:
        turn = http["agent_turn_echo"]
        proxied = http.get("reference_proxied_to_fake")
        figures.append(
            Figure(
                "P7",
                "agent turn, `echo` provider, POST /v1/chat/completions via Traefik, p50 / p99",
                f"{turn['p50_ms']} / {turn['p99_ms']} ms",
                f"proxied to the fake upstream, same route {proxied['p50_ms']} /"
                f" {proxied['p99_ms']} ms"
                if proxied
                else "—",
                "≤ 5 ms p50",
                turn["p50_ms"] <= 5,
            )
        )
    return {"ws": ws, "http": http}, figures, notes
