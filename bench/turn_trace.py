"""One agent turn, message by message: what it publishes on NATS and who receives it.

    .venv/bin/python bench/turn_trace.py [--turns 50] [--replicas 1] [--idempotency-key]
        [--surface ws|v1]

Starts a local stack (bench/local_stack.py, echo provider), warms it, then:
- traces one WebSocket `agent` turn (echo, `wait`, a new session) with a `>` subscriber of
  its own: every message with its time since the request, subject, size and reply inbox
  (`--idempotency-key`: each `agent` call carries one, as /v1 agent mode's and OpenClaw
  clients' calls do); `--surface v1`: P7's request instead, a non-streamed
  `/v1/chat/completions` agent turn through Traefik (bench/turn_ab.py's);
- runs `--turns` more and reads nats-server's /connz before and after: messages in and out
  per turn of each client connection (by its name), the tracer's own deliveries taken off.

What it prints is the list docs/runtime.md "What a turn costs" keeps (who receives what).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aisopod.settings import nats_servers  # noqa: E402
from bench.agent_bench import _round_trips  # noqa: E402
from bench.harness import load_average  # noqa: E402
from bench.local_stack import BenchStack  # noqa: E402
from bench.ws_lean_client import connect_gateway  # noqa: E402

TRACER = "turn-trace"


def monitor_url(stack: BenchStack) -> str:
    conf = (stack.state_dir / "nats" / "nats.conf").read_text()
    found = re.search(r'^http: "([^"]+)"', conf, re.M)
    if found is None:
        raise SystemExit("the stack has no NATS monitor (start it with --nats-monitor)")
    return f"http://{found.group(1)}"


async def connections(url: str) -> dict[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        connz = (await client.get(f"{url}/connz", params={"limit": 1024})).json()
    return {c["cid"]: c for c in connz["connections"]}


def frames(prefix: str, keyed: bool = False) -> Any:
    def frame(request_id: str) -> bytes:
        params: dict[str, Any] = {
            "message": "hi",
            "sessionKey": f"{prefix}-{request_id}",
            "wait": True,
        }
        if keyed:
            params["idempotencyKey"] = uuid.uuid4().hex
        call = {"jsonrpc": "2.0", "id": request_id, "method": "agent", "params": params}
        return orjson.dumps(call)

    return frame


async def main(turns: int, replicas: int, keyed: bool, surface: str = "ws") -> None:
    from aisopod_http_api.upstream.pool import UpstreamPool
    from bench.turn_ab import v1_request, v1_round_trips

    stack = BenchStack.start("--nats-monitor", "--replicas", str(replicas), with_fake=False)
    pool = UpstreamPool()
    try:
        url = monitor_url(stack)
        client, _ = await connect_gateway("127.0.0.1", stack.http_port, stack.token, subscribe=[])
        origin, request = v1_request(stack, direct=False)

        async def turns_of(name: str, count: int) -> None:
            if surface == "v1":  # a new session each (no session header, no `user`)
                await v1_round_trips(pool, origin, request, count)
            else:
                prefix = f"agent:main:{name}-{uuid.uuid4().hex[:6]}"
                await _round_trips(client, frames(prefix, keyed), count)

        await turns_of("warm", 20)

        nc = await nats.connect(
            nats_servers(stack.info["nats_url"]),
            user="admin",
            password=stack.nats_password(),
            name=TRACER,
        )
        seen: list[tuple[float, str, int, str]] = []
        traced = asyncio.Event()
        tracing = [False]

        async def on_msg(msg: Any) -> None:
            if tracing[0]:
                seen.append((time.perf_counter(), msg.subject, len(msg.data), msg.reply or ""))

        await nc.subscribe(">", cb=on_msg)
        await nc.flush()
        tracing[0] = True
        started = time.perf_counter()
        await turns_of("trace", 1)
        await asyncio.sleep(0.3)  # what the turn set off after its reply (watch deliveries)
        tracing[0] = False
        traced.set()
        print(f"# one turn (load {load_average():.1f}): {len(seen)} messages")
        for at, subject, size, reply in seen:
            print(f"{(at - started) * 1000:8.2f} ms  {size:6d} B  {subject}  {reply}")

        await nc.drain()
        before = await connections(url)
        await turns_of("many", turns)
        after = await connections(url)
        print(f"\n# per turn, each connection ({turns} turns): in / out messages")
        for cid, conn in sorted(after.items(), key=lambda kv: kv[1].get("name", "")):
            was = before.get(cid)
            if was is None:
                continue
            d_in = (conn["in_msgs"] - was["in_msgs"]) / turns
            d_out = (conn["out_msgs"] - was["out_msgs"]) / turns
            if d_in or d_out:
                print(f"{conn.get('name', '?'):40s} in {d_in:6.2f}  out {d_out:6.2f}")
        client.close()
    finally:
        await pool.close()
        stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--idempotency-key", action="store_true", help="a key on every call")
    parser.add_argument("--surface", choices=("ws", "v1"), default="ws", help="what a turn is")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.replicas, args.idempotency_key, args.surface))
