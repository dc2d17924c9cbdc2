"""What one idle WebSocket costs Traefik, per configuration variant.

Starts one default local stack, then, one variant at a time, a second Traefik with the stack's
own static configuration and routes (same dynamic directory) on free ports, its debug API
on: opens N idle WebSocket connections through it (the lean client's handshake), reads
its RSS (and anonymous memory) before and after from /proc, and keeps its heap profile
(`/debug/pprof/heap?debug=1`, MemStats at the end) in `<out>/edge_ws_memory/`.

Variants: the launcher's configuration (`fast`); Go's standard proxy instead of the fast
one (`std`); `GOGC=25`; `GOMEMLIMIT=64MiB`.

    .venv/bin/python -m bench.edge_ws_memory [--connections 800] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from aisopod_ops.launcher.paths import binary
from bench.harness import RESULTS, progress
from bench.local_stack import BenchStack
from bench.openclaw_bench import Aisopod
from bench.ws_lean_client import LeanClient

SETTLE_S = 2.0  # a pause before reading RSS, not a condition wait
START_TIMEOUT_S = 60.0
CONNECT_ATTEMPTS = 3  # a handshake timed out on a loaded machine is tried again
RELEASE_S = 10.0


def _drop_fast_proxy(config: dict[str, Any]) -> None:
    config.pop("experimental", None)


def _unchanged(config: dict[str, Any]) -> None:
    return None


VARIANTS: dict[str, tuple[Callable[[dict[str, Any]], None], dict[str, str]]] = {
    "fast": (_unchanged, {}),
    "std": (_drop_fast_proxy, {}),
    "fast GOGC=25": (_unchanged, {"GOGC": "25"}),
    "fast GOMEMLIMIT=64MiB": (_unchanged, {"GOMEMLIMIT": "64MiB"}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kib(pid: int) -> dict[str, int]:
    wanted = {"Rss:": "rss", "Anonymous:": "anon"}
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] in wanted:
            out[wanted[parts[0]]] = int(parts[1])
    return out


def memstats(heap_text: str) -> dict[str, int]:
    """HeapInuse and Stack (in use) from the MemStats block of a debug=1 heap profile."""
    out = {}
    for line in heap_text.splitlines():
        if line.startswith("# HeapInuse = "):
            out["heap_inuse"] = int(line.split("=")[1])
        elif line.startswith("# Stack = "):
            out["stack_inuse"] = int(line.split("=")[1].split("/")[0])
    return out


def spawn_traefik(
    config_file: Path, env_extra: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [binary("traefik"), f"--configFile={config_file}"],
            env={**os.environ, **env_extra},
            stdout=log,
            stderr=log,
        )


async def _until(check: Callable[[], Any], deadline: float) -> None:
    while True:
        try:
            await check()
            return
        except (OSError, ConnectionError, RuntimeError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def measure(stack: BenchStack, name: str, connections: int, workdir: Path) -> dict[str, Any]:
    mutate, env_extra = VARIANTS[name]
    config = copy.deepcopy(
        yaml.safe_load((stack.state_dir / "traefik" / "traefik.yml").read_text())
    )
    http, ping, api = free_port(), free_port(), free_port()
    config["entryPoints"]["web"]["address"] = f"127.0.0.1:{http}"
    config["entryPoints"].pop("websecure", None)
    config["entryPoints"]["ping"]["address"] = f"127.0.0.1:{ping}"
    config["entryPoints"]["traefik"] = {"address": f"127.0.0.1:{api}"}
    config["api"] = {"dashboard": False, "debug": True, "insecure": True}
    config.pop("accessLog", None)
    mutate(config)
    slug = name.replace(" ", "-").replace("=", "")
    config_file = stack.tmp / f"traefik-{slug}.yml"  # removed with the stack
    config_file.write_text(yaml.safe_dump(config))
    proc = spawn_traefik(config_file, env_extra, stack.tmp / f"traefik-{slug}.log")
    clients: list[LeanClient] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S

        async def pinged() -> None:
            await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{ping}/ping", None, 1
            )

        await _until(pinged, deadline)
        edge = Aisopod(name, "127.0.0.1", http, stack.token)
        edge.stack = stack

        async def handshake() -> None:
            (await edge.connect()).close()

        await _until(handshake, deadline)  # routes loaded, the replica healthy
        await asyncio.sleep(SETTLE_S)
        before = memory_kib(proc.pid)
        gate = asyncio.Semaphore(16)

        async def one() -> None:
            async with gate:
                for attempt in range(1, CONNECT_ATTEMPTS + 1):
                    try:
                        clients.append(await edge.connect())
                        return
                    except (OSError, ConnectionError, TimeoutError) as exc:
                        progress(f"handshake {len(clients)}: {exc!r}")
                        if attempt == CONNECT_ATTEMPTS:
                            raise
                        await asyncio.sleep(0.5 * attempt)  # as a client reconnects

        await asyncio.gather(*(one() for _ in range(connections)))
        for client in clients:
            client.inbox = None  # idle: frames dropped unread
        await asyncio.sleep(SETTLE_S)
        after = memory_kib(proc.pid)
        url = f"http://127.0.0.1:{api}/debug/pprof/heap?debug=1"
        heap = (await asyncio.to_thread(urllib.request.urlopen, url, None, 10)).read().decode()
        (workdir / f"heap-{slug}.txt").write_text(heap)
    finally:
        for client in clients:
            client.close()
        proc.kill()  # measured; a drain would only wait out its grace period
        proc.wait()
        # A pause for ws-gateway to let go of these connections before the next variant
        # opens as many again (a settling pause, not a condition wait).
        await asyncio.sleep(RELEASE_S)
    growth = after["rss"] - before["rss"]
    return {
        "variant": name,
        "env": env_extra,
        "rss_idle_mib": round(before["rss"] / 1024, 1),
        "anon_idle_mib": round(before["anon"] / 1024, 1),
        "rss_connected_mib": round(after["rss"] / 1024, 1),
        "growth_mib": round(growth / 1024, 1),
        "per_connection_kib": round(growth / connections, 1),
        **{k: round(v / 2**20, 1) for k, v in memstats(heap).items()},
    }


async def run(connections: int, workdir: Path) -> list[dict[str, Any]]:
    stack = BenchStack.start(with_fake=False)
    try:
        results = []
        for name in VARIANTS:
            progress(f"traefik variant {name}")
            results.append(await measure(stack, name, connections, workdir))
        return results
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    # Below 1,000: the previous variant's connections may not all be gone from ws-gateway.
    parser.add_argument("--connections", type=int, default=800)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    workdir = args.out / "edge_ws_memory"
    workdir.mkdir(parents=True, exist_ok=True)
    load = [round(os.getloadavg()[0], 1)]
    results = asyncio.run(run(args.connections, workdir))
    load.append(round(os.getloadavg()[0], 1))
    lines = [
        "# What an idle WebSocket costs Traefik",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, load average "
        f"{min(load)}–{max(load)}; {args.connections} idle connections through a second "
        "Traefik with the local stack's configuration (variants below), in front of a "
        "default local stack (one ws-gateway); RSS from /proc before and after, heap "
        "and goroutine stacks from Traefik's MemStats with the connections open.",
        "",
        "| variant | RSS idle (MiB) | of it anonymous | RSS with the connections | growth "
        "| per connection (KiB) | Go heap in use | goroutine stacks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['variant']} | {r['rss_idle_mib']} | {r['anon_idle_mib']} "
            f"| {r['rss_connected_mib']} | +{r['growth_mib']} | {r['per_connection_kib']} "
            f"| {r.get('heap_inuse', '?')} | {r.get('stack_inuse', '?')} |"
        )
    (args.out / "edge_ws_memory.json").write_text(
        json.dumps({"load_avg": load, "connections": args.connections, "runs": results}, indent=2)
        + "\n"
    )
    (args.out / "edge_ws_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
