"""P3: where a handshake's time goes, against floors on the same Traefik (docs/ws-gateway.md,
"P3").

    .venv/bin/python -m bench.handshake_floor [--rounds 4] [--count 200] [--out STEM]

One local stack (loopback exempt, as every bench stack) and two reference servers behind
the same Traefik entry point, each on a route with the `/ws` route's middlewares
(`bench/ws_refservers.py`): `websockets` (the library's asyncio server: a challenge frame
after the 101, the first frame answered with a hello) and `raw` (the same bytes by hand on
an asyncio.Protocol: the 101 and the challenge in one write; the floor of Python, Traefik
and the kernel). Their frames have the sizes of the gateway's challenge and hello, and the
client sends them a frame the size of its `connect`. Each server is also reached directly
(the gateway with the edge proof), so the difference is what the Traefik crossing costs.

A last route leads to `raw` without the middlewares (what the chain costs). Before
anything is warmed up, the first `--first` handshakes through Traefik after the stack is
ready are measured apart (what bench/openclaw_bench.py's handshake row measures).

Blocks of `count` sequential handshakes (TCP connect → upgrade → 101 → challenge →
first frame → answer) alternate over the sides, `rounds` times, each side leading in
turn. Per block: wall p50/p99, the phases the client sees (TCP connected, 101 read,
challenge read, answer read), and CPU per handshake of each process (its threads' time on
a CPU, `bench.handshake_ab.cpu_seconds`), the client's own included. The load average goes
with every block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aisopod_ops.launcher.ports import free_port
from bench.handshake_ab import cpu_seconds, load, pct
from bench.harness import median_per_process, progress, write_ab_result
from bench.local_stack import BenchStack
from bench.ws_lean_client import LeanClient, connect_frame, upgrade_request

REPO = Path(__file__).resolve().parent.parent
WS_MIDDLEWARES = ["encoded-strict", "strip-identity", "edge-proof", "retry-unsent"]


@dataclass
class Side:
    name: str
    port: int
    path: str
    first_frame: bytes
    headers: dict[str, str] = field(default_factory=dict)
    gateway: bool = False

    async def handshake(self) -> tuple[float, float, float, float, float]:
        """Seconds from the start to: TCP connected, 101, challenge, answer; and the
        answer's size."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        _, client = await loop.create_connection(LeanClient, "127.0.0.1", self.port)
        connected = time.perf_counter()
        assert client.transport is not None
        client.transport.write(upgrade_request("127.0.0.1", self.port, self.path, self.headers))
        await asyncio.wait_for(client.upgraded, 10)
        upgraded = time.perf_counter()
        assert client.inbox is not None
        await asyncio.wait_for(client.inbox.get(), 10)
        challenged = time.perf_counter()
        client.send(self.first_frame)
        answer = await asyncio.wait_for(client.inbox.get(), 10)
        done = time.perf_counter()
        if self.gateway and b'"result"' not in answer:
            raise RuntimeError(f"handshake failed: {answer[:300]!r}")
        client.close()
        return connected - start, upgraded - start, challenged - start, done - start, len(answer)


def client_cpu() -> float:
    return cpu_seconds(os.getpid())


async def block(side: Side, count: int, pids: dict[str, list[int]]) -> dict[str, Any]:
    def cpu() -> dict[str, float]:
        out = {n: sum(cpu_seconds(p) for p in group) for n, group in pids.items()}
        out["client"] = client_cpu()
        return out

    before = cpu()
    samples = [await side.handshake() for _ in range(count)]
    after = cpu()

    def p50(i: int, j: int | None = None) -> float:
        values = [s[i] - (s[j] if j is not None else 0.0) for s in samples]
        return round(statistics.median(values) * 1000, 3)

    total = [s[3] for s in samples]
    return {
        "side": side.name,
        "load": load(),
        "p50_ms": p50(3),
        "p99_ms": round(pct(total, 0.99) * 1000, 3),
        "tcp_connect_p50_ms": p50(0),
        "request_to_101_p50_ms": p50(1, 0),
        "101_to_challenge_p50_ms": p50(2, 1),
        "first_frame_to_answer_p50_ms": p50(3, 2),
        "cpu_us_per_handshake": {
            n: round((after[n] - before[n]) / count * 1e6) for n in before if after[n] > before[n]
        },
    }


async def run(sides: list[Side], pids: dict[str, list[int]], rounds: int, count: int) -> list:
    for side in sides:  # warm up: imports, first subscriptions, the caches
        for _ in range(30):
            await side.handshake()
    blocks = []
    for r in range(rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        for side in order:
            result = await block(side, count, pids)
            progress(json.dumps(result))
            blocks.append(result)
    return blocks


def summary(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(b["side"] for b in blocks):
        mine = [b for b in blocks if b["side"] == name]
        keys = [k for k in mine[0] if k.endswith("_ms")]
        out[name] = {k: statistics.median(b[k] for b in mine) for k in keys}
        out[name]["cpu_us_per_handshake"] = median_per_process(mine, "cpu_us_per_handshake")
    return out


async def gateway_frame_sizes(side: Side) -> tuple[int, int]:
    """The sizes of the gateway's challenge and hello payloads, for the references."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(LeanClient, "127.0.0.1", side.port)
    assert client.transport is not None
    client.transport.write(upgrade_request("127.0.0.1", side.port, "/ws", side.headers))
    await asyncio.wait_for(client.upgraded, 10)
    assert client.inbox is not None
    challenge = await asyncio.wait_for(client.inbox.get(), 10)
    client.send(side.first_frame)
    hello = await asyncio.wait_for(client.inbox.get(), 10)
    client.close()
    return len(challenge), len(hello)


async def wait_routes(sides: list[Side]) -> None:
    deadline = time.monotonic() + 20
    for side in sides:
        while True:
            try:
                await side.handshake()
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{side.name} never answered: {exc!r}") from exc
                await asyncio.sleep(0.2)


def pids_of(stack: BenchStack, refs: dict[str, list[int]]) -> dict[str, list[int]]:
    path = ("traefik", "ws-gateway", "nats", "auth", "ratelimit", "auth+ratelimit")
    pids = {name: list(group) for name, group in stack.pids.items() if name in path}
    pids.update(refs)
    return pids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument(
        "--first", type=int, default=100, help="handshakes measured right after the start"
    )
    parser.add_argument("--out", default=None, help="results file stem in bench/results")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stack = BenchStack.start(with_fake=False)
    children: list[subprocess.Popen[bytes]] = []
    bench_yml = stack.state_dir / "traefik" / "dynamic" / "bench-handshake.yml"
    try:
        edge = (stack.state_dir / "secrets" / "edge-secret").read_text().strip()
        replica = int(stack.backend_urls("ws-gateway")[0].rsplit(":", 1)[1])
        frame = connect_frame(stack.token)
        via = Side("gateway via traefik", stack.http_port, "/ws", frame, gateway=True)
        direct = Side(
            "gateway direct", replica, "/ws", frame, {"X-Aisopod-Edge": edge}, gateway=True
        )
        # What bench/openclaw_bench.py measures: the first handshakes after the stack is
        # ready, nothing warmed up (its `connect` subscribes to nothing).
        fresh = Side(
            "gateway via traefik, first after start",
            stack.http_port,
            "/ws",
            connect_frame(stack.token, subscribe=[]),
            gateway=True,
        )
        first = asyncio.run(block(fresh, args.first, pids_of(stack, {})))
        progress(json.dumps(first))
        challenge_size, hello_size = asyncio.run(gateway_frame_sizes(direct))
        progress(f"gateway frames: challenge {challenge_size} B, hello {hello_size} B")
        ref_ports = {"websockets": free_port(), "raw": free_port()}
        kinds = {"websockets": "handshake", "raw": "handshake-raw"}
        ref_pids: dict[str, list[int]] = {}
        routers: dict[str, Any] = {}
        services: dict[str, Any] = {}
        for ref, port in ref_ports.items():
            proc = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "ws_refservers.py"), kinds[ref],
                 str(port), str(challenge_size), str(hello_size)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            children.append(proc)
            ref_pids[ref] = [proc.pid]
            routers[f"bench-hs-{ref}"] = {
                "rule": f"Path(`/bench-hs-{ref}`)",
                "service": f"bench-hs-{ref}",
                "priority": 950,
                "entryPoints": ["web"],
                "middlewares": WS_MIDDLEWARES,
            }
            services[f"bench-hs-{ref}"] = {
                "loadBalancer": {
                    "servers": [{"url": f"http://127.0.0.1:{port}"}],
                    "passHostHeader": True,
                    "serversTransport": "edge",
                }
            }
        # The raw server once more without the middleware chain: what the chain costs.
        routers["bench-hs-bare"] = {
            "rule": "Path(`/bench-hs-bare`)",
            "service": "bench-hs-raw",
            "priority": 950,
            "entryPoints": ["web"],
        }
        bench_yml.write_text(yaml.safe_dump({"http": {"routers": routers, "services": services}}))
        quiet_sub = Side(
            "gateway via traefik, subscribe []",
            stack.http_port,
            "/ws",
            connect_frame(stack.token, subscribe=[]),
            gateway=True,
        )
        sides = [via, quiet_sub, direct]
        for ref, port in ref_ports.items():
            sides.append(Side(f"{ref} via traefik", stack.http_port, f"/bench-hs-{ref}", frame))
            sides.append(Side(f"{ref} direct", port, f"/bench-hs-{ref}", frame))
        bare = Side("raw via traefik, no middlewares", stack.http_port, "/bench-hs-bare", frame)
        sides.append(bare)
        pids = pids_of(stack, {f"ref {k}": v for k, v in ref_pids.items()})
        asyncio.run(wait_routes(sides))
        load_before = load()
        blocks = asyncio.run(run(sides, pids, args.rounds, args.count))
        result = {
            "load_before": load_before,
            "load_after": load(),
            "frames": {"challenge": challenge_size, "hello": hello_size, "connect": len(frame)},
            "first_after_start": first,
            "blocks": blocks,
            "summary": summary(blocks),
        }
        write_ab_result(result, args.out)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(10)
        bench_yml.unlink(missing_ok=True)
        stack.stop()


if __name__ == "__main__":
    main()
