"""P7 over the WebSocket surface: an agent turn with the offline `echo` provider, end to
end (the /v1 agent mode is bench/http_agent.py).

`agent {message, sessionKey, wait: true}` through Traefik: the whole turn (run record,
lane, transcript, provider, events) until its final result, one turn after another, each
in a fresh session (as /v1 requests without a session are). Reference, same socket, same
run: `config.get`, a runtime-served call without a turn (the floor under any agent call).
Also measured: NATS messages per turn (nats-server's /varz), what a turn costs the bus;
and the same turns in one long session, first tenth against last tenth (a turn reads the
session's history). The client is the lean one of bench/ws_lean_client.py.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
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
    prefix = f"agent:main:bench-p7-{uuid.uuid4().hex[:8]}"
    long_session = f"{prefix}-long"

    def agent_turn(session: str | None, fresh: str = prefix) -> Any:
        def frame(request_id: str) -> bytes:
            key = session or f"{fresh}-{request_id}"  # None: a fresh session per turn
            params = {"message": f"turn {request_id}", "sessionKey": key, "wait": True}
            return orjson.dumps(
                {"jsonrpc": "2.0", "id": request_id, "method": "agent", "params": params}
            )

        return frame

    def config_get(request_id: str) -> bytes:
        return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "config.get"})

    try:
        # Warm (agent, lane, provider) in sessions of its own: request ids repeat, and a
        # measured turn must find its session new.
        await _round_trips(client, agent_turn(None, f"{prefix}-warm"), 20)
        before = await nats_messages(stack)
        turns = await _round_trips(client, agent_turn(None), count)
        after = await nats_messages(stack)
        floor = await _round_trips(client, config_get, count)
        # One session turn after turn: what a long conversation costs per turn, and what
        # its first and last tenth cost the bus (a turn reads the session's history).
        tenth = max(1, count // 10)
        long, long_msgs, long_cpu = [], [], []
        busy = [p for k in ("runtime", "nats", "nats-server") for p in stack.pids.get(k, [])]
        for part in (tenth, count - 2 * tenth, tenth):
            start, cpu = await nats_messages(stack), cpu_ms(busy)
            long += await _round_trips(client, agent_turn(long_session), part)
            end = await nats_messages(stack)
            long_msgs.append([round((e - s) / part, 1) for s, e in zip(start, end, strict=True)])
            long_cpu.append(round((cpu_ms(busy) - cpu) / part, 2))
    finally:
        client.close()
    return {
        "agent_turn_echo": latency_summary(turns),
        "reference_config_get": latency_summary(floor),
        # What one turn costs the bus (all clients of nats-server, so an upper bound).
        "nats_messages_in_per_turn": round((after[0] - before[0]) / count, 1),
        "nats_messages_out_per_turn": round((after[1] - before[1]) / count, 1),
        "one_session": {
            "turns": count,
            "first_tenth": latency_summary(long[:tenth]),
            "last_tenth": latency_summary(long[-tenth:]),
            # [in, out]: out grows with what a turn reads back
            "nats_messages_per_turn_first_tenth": long_msgs[0],
            "nats_messages_per_turn_last_tenth": long_msgs[2],
            # runtime + nats-server utime+stime per turn: steadier than wall time here
            "runtime_nats_cpu_ms_per_turn_first_tenth": long_cpu[0],
            "runtime_nats_cpu_ms_per_turn_last_tenth": long_cpu[2],
        },
    }


def cpu_ms(pids: list[int]) -> float:
    """CPU milliseconds (user + system) the processes used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


async def nats_messages(stack: BenchStack) -> tuple[int, int]:
    """nats-server's in/out message counters (its monitoring endpoint, /varz)."""
    conf = (stack.state_dir / "nats" / "nats.conf").read_text()
    address = re.search(r'^http: "([^"]+)"', conf, re.M)
    if address is None:
        return (0, 0)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        varz = (await client.get(f"http://{address.group(1)}/varz")).json()
    return int(varz["in_msgs"]), int(varz["out_msgs"])


async def run(stack: BenchStack, quick: bool) -> tuple[dict[str, Any], list[Figure]]:
    count = 100 if quick else 300
    progress(f"P7 agent turns over WebSocket ({count})")
    ws = await over_ws(stack, count)
    turn, floor = ws["agent_turn_echo"], ws["reference_config_get"]
    first, last = ws["one_session"]["first_tenth"], ws["one_session"]["last_tenth"]
    long = {
        "first": ws["one_session"]["nats_messages_per_turn_first_tenth"],
        "last": ws["one_session"]["nats_messages_per_turn_last_tenth"],
    }
    figure = Figure(
        "P7",
        "agent turn (echo), WebSocket `agent` with wait via Traefik, a fresh session each,"
        " p50 / p99",
        f"{turn['p50_ms']} / {turn['p99_ms']} ms (one session, turns 1–{count // 10}:"
        f" {first['p50_ms']} ms p50, last {count // 10}: {last['p50_ms']} ms;"
        f" NATS messages in/out per turn {'/'.join(map(str, long['first']))}"
        f" → {'/'.join(map(str, long['last']))}; runtime+nats CPU per turn"
        f" {ws['one_session']['runtime_nats_cpu_ms_per_turn_first_tenth']} →"
        f" {ws['one_session']['runtime_nats_cpu_ms_per_turn_last_tenth']} ms)",
        f"`config.get` on the same socket {floor['p50_ms']} / {floor['p99_ms']} ms"
        f" (a turn: {ws['nats_messages_in_per_turn']} NATS messages in)",
        "≤ 5 ms p50",
        turn["p50_ms"] <= 5,
    )
    return ws, [figure]
