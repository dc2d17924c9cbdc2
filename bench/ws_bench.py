"""ws-gateway benchmarks P1–P5 (docs/quality.md), each beside its in-run reference.

    .venv/bin/python -m bench --only P1,P2,P3,P4,P5   (the common run: bench/README.md)
    .venv/bin/python bench/ws_bench.py [--quick]      (this area alone: ws.json, ws.md)

Uses the stack `python -m bench` started (or, alone, starts a private local stack: 2
ws-gateway replicas behind Traefik), reference servers (bare websockets echo behind the
same Traefik; a raw NATS worker), and measures with the lean client of
`ws_lean_client.py`. `measure()` returns the raw results, `figures()` the table rows.
Parts another issue owns are stood in for when absent and the results say so: the auth
service's `auth.verify`, the runtime's `config.get`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import orjson
import uvloop
import yaml
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ws_lean_client import LeanClient, connect_gateway, open_socket, throughput  # noqa: E402

from aisopod.settings import nats_servers  # noqa: E402
from aisopod_ops.launcher.ports import free_port  # noqa: E402
from bench.harness import Figure, progress  # noqa: E402
from tests.conftest import start_local_stack, stop_local_stack  # noqa: E402

RESULTS = REPO / "bench" / "results"
QUICK = "--quick" in sys.argv
SEED = {
    "auth": {"mode": "token"},
    # The per-connection request limit guards against one abusive client; a load test is one.
    "gateway": {"requestsPerSecond": 1_000_000, "requestBurst": 1_000_000, "maxInFlight": 4096},
    # Every upgrade, direct ones included, now passes the per-IP connection limit; the
    # bench's thousand sockets from loopback are one client by design.
    "limits": {"exemptCidrs": ["127.0.0.1/32", "::1/128"]},
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> float:
    return round(value * 1000, 3)


# -- request/response load --------------------------------------------------------------
async def latency(clients: list[LeanClient], make: Any, count: int) -> dict[str, float]:
    """Sequential round trips on one socket: p50/p99 in ms."""
    client = clients[0]
    samples = []
    for n in range(count):
        start = time.perf_counter()
        client.send(make(n))
        await client.recv()
        samples.append(time.perf_counter() - start)
    return {"p50_ms": ms(statistics.median(samples)), "p99_ms": ms(pct(samples, 0.99))}


def rpc(method: str) -> Any:
    prefix = b'{"jsonrpc":"2.0","method":"' + method.encode() + b'","params":{},"id":'
    return lambda n: prefix + str(n).encode() + b"}"


# -- the stack and references ------------------------------------------------------------
class Bench:
    def __init__(self, stack: Any = None) -> None:
        """`stack`: a running `bench.local_stack.BenchStack` to measure (not stopped here);
        None starts a private one."""
        self.tmp = Path(tempfile.mkdtemp(prefix="ws-bench-"))
        self.children: list[subprocess.Popen[bytes]] = []
        self.notes: list[str] = []
        self.shared = stack

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "ws_refservers.py"), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.children.append(proc)
        return proc

    def start(self) -> None:
        if self.shared is not None:
            self.proc, self.info = self.shared.proc, self.shared.info
            state = self.shared.state_dir
        else:
            state = self.tmp / "state"
            state.mkdir()
            seed = self.tmp / "seed.yaml"
            seed.write_text(json.dumps(SEED))
            self.proc, self.info = start_local_stack(state, "--config", str(seed))
        self.state = state
        self.token = self.info["admin_token"]
        self.password = (state / "secrets" / "nats-admin.password").read_text().strip()
        routes = yaml.safe_load((state / "traefik" / "dynamic" / "routes.yml").read_text())
        servers = routes["http"]["services"]["ws-gateway"]["loadBalancer"]["servers"]
        self.replicas = [int(s["url"].rsplit(":", 1)[1]) for s in servers]
        # A replica reached directly must be shown Traefik's edge proof.
        proof = (state / "secrets" / "edge-secret").read_text().strip()
        self.edge = {"X-Aisopod-Edge": proof}
        self.http_port = int(self.info["http_url"].rsplit(":", 1)[1])
        self.echo_port = free_port()
        self.spawn("echo", str(self.echo_port))
        # The echo reference behind the same Traefik entry point, as its own route.
        extra = {
            "http": {
                "routers": {
                    "bench-echo": {
                        "rule": "Path(`/bench-echo`)",
                        "service": "bench-echo",
                        "priority": 950,
                        "entryPoints": ["web"],
                    }
                },
                "services": {
                    "bench-echo": {
                        "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{self.echo_port}"}]}
                    }
                },
            }
        }
        (state / "traefik" / "dynamic" / "bench.yml").write_text(yaml.safe_dump(extra))

    async def stand_ins(self) -> None:
        nc = await nats.connect(
            nats_servers(self.info["nats_url"]), user="admin", password=self.password
        )
        for subject, kind, args in (
            ("aisopod.auth.verify", "auth", [self.token]),
            ("aisopod.rpc.config.get", "worker", ["config.get"]),
        ):
            try:
                await nc.request(subject, b"{}", timeout=1)
            except NoRespondersError:
                self.spawn(kind, self.info["nats_url"], "admin", self.password, *args)
                self.notes.append(f"{subject}: no service answered it; a bench stand-in did")
            except NatsTimeout:
                pass
        self.spawn("worker", self.info["nats_url"], "admin", self.password, "bench.ref")
        await nc.close()
        deadline = time.monotonic() + 15
        while True:  # Traefik picked up bench.yml and the /ws route upgrades?
            try:
                ws, _ = await connect_gateway("127.0.0.1", self.http_port, self.token)
                ws.close()
                echo = await open_socket("127.0.0.1", self.http_port, "/bench-echo")
                echo.close()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the /ws route never upgraded: {exc}") from exc
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            child.wait(10)
        (self.state / "traefik" / "dynamic" / "bench.yml").unlink(missing_ok=True)
        if self.shared is None:
            stop_local_stack(self.proc)

    def rss_kib(self, pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


# -- measures ----------------------------------------------------------------------------
async def p1_p2(bench: Bench) -> dict[str, Any]:
    count = 1000 if QUICK else 4000
    seconds = 2.0 if QUICK else 5.0
    port = bench.http_port
    gw = [
        (await connect_gateway("127.0.0.1", port, bench.token, subscribe=[]))[0] for _ in range(50)
    ]
    echo = [await open_socket("127.0.0.1", port, "/bench-echo") for _ in range(50)]
    health_frame = rpc("health")
    out: dict[str, Any] = {
        "P1": {
            "gateway_health_via_traefik": {
                **await latency(gw, health_frame, count),
                "req_per_s_50_in_flight": await throughput(gw, health_frame, seconds),
            },
            "reference_bare_websockets_echo_via_traefik": {
                **await latency(echo, health_frame, count),
                "req_per_s_50_in_flight": await throughput(echo, health_frame, seconds),
            },
        }
    }
    config_frame = rpc("config.get")
    out["P2"] = {
        "gateway_config_get_via_traefik_and_nats": {
            **await latency(gw, config_frame, count),
            "req_per_s_50_in_flight": await throughput(gw, config_frame, seconds),
        },
        "reference_raw_nats_request_reply": await raw_nats(bench, count, seconds),
    }
    for client in gw + echo:
        client.close()
    return out


async def raw_nats(bench: Bench, count: int, seconds: float) -> dict[str, Any]:
    nc = await nats.connect(
        nats_servers(bench.info["nats_url"]), user="admin", password=bench.password
    )
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await nc.request("aisopod.rpc.bench.ref", b"{}", timeout=5)
        samples.append(time.perf_counter() - start)
    done = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await nc.request("aisopod.rpc.bench.ref", b"{}", timeout=5)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(50)))
    rate = round(done / (time.perf_counter() - started))
    await nc.close()
    return {
        "p50_ms": ms(statistics.median(samples)),
        "p99_ms": ms(pct(samples, 0.99)),
        "req_per_s_50_in_flight": rate,
    }


async def p3(bench: Bench) -> dict[str, Any]:
    samples = []
    for _ in range(100 if QUICK else 300):
        start = time.perf_counter()
        client, _ = await connect_gateway("127.0.0.1", bench.http_port, bench.token)
        samples.append(time.perf_counter() - start)
        client.close()
    return {
        "upgrade_to_hello_via_traefik": {
            "median_ms": ms(statistics.median(samples)),
            "p99_ms": ms(pct(samples, 0.99)),
        }
    }


async def p4_p5(bench: Bench) -> dict[str, Any]:
    """1000 clients on one replica: memory per idle connection, then event fan-out."""
    port = bench.replicas[0]
    pid = bench.info["pids"]["ws-gateway"][0]
    n = 1000
    before = bench.rss_kib(pid)
    clients: list[LeanClient] = []
    for _ in range(0, n, 100):
        batch = await asyncio.gather(
            *(
                connect_gateway(
                    "127.0.0.1", port, bench.token, subscribe=["cron.event"], headers=bench.edge
                )
                for _ in range(100)
            )
        )
        clients.extend(c for c, _ in batch)
    await asyncio.sleep(2)  # let allocations settle before reading RSS
    after = bench.rss_kib(pid)
    per_conn = round((after - before) / n, 2)

    p4 = await fanout(bench, clients)
    for client in clients:
        client.close()
    stack_rss = {
        name: sum(bench.rss_kib(p) for p in pids) // 1024
        for name, pids in bench.info["pids"].items()
    }
    return {
        "P4": p4,
        "P5": {
            "gateway_kib_per_idle_connection": per_conn,
            "gateway_rss_kib_before_after": [before, after],
            "reference_kib_per_idle_connection": await reference_memory(bench, n),
            "stack_rss_mib_by_process": stack_rss,
        },
    }


async def fanout(bench: Bench, clients: list[LeanClient]) -> dict[str, Any]:
    """P4: `cron.event`s published to the stream, delivered to every client (each
    subscribed to them; the frame only has to carry the marker below): the last delivery
    of events sent one at a time, then the frames per second of a burst."""
    n = len(clients)
    arrivals: dict[int, list[float]] = {}

    marker = b'"jobId":"bench","n":'

    def on_frame(client: LeanClient, payload: bytes, now: float) -> None:
        # No JSON decode per frame: the client side must stay cheaper than the server's.
        at = payload.find(marker)
        if at >= 0:
            end = payload.index(b"}", at)
            arrivals.setdefault(int(payload[at + len(marker) : end]), []).append(now)

    for client in clients:
        client.on_frame = on_frame
    nc = await nats.connect(
        nats_servers(bench.info["nats_url"]), user="admin", password=bench.password
    )
    js = nc.jetstream()
    spaced = 20 if QUICK else 50
    last_delivery = []
    incomplete = 0
    for i in range(spaced):
        sent = time.perf_counter()
        await js.publish("aisopod.evt.cron.event", orjson.dumps({"jobId": "bench", "n": i}))
        deadline = time.monotonic() + 30
        while len(arrivals.get(i, [])) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        if len(arrivals.get(i, [])) < n:
            incomplete += 1  # counted, and its delivery time is the whole wait
        last_delivery.append(max(arrivals.get(i, [time.perf_counter()])) - sent)
    burst = 100 if QUICK else 300
    first = spaced
    sent = time.perf_counter()
    await asyncio.gather(
        *(
            js.publish("aisopod.evt.cron.event", orjson.dumps({"jobId": "bench", "n": first + i}))
            for i in range(burst)
        )
    )
    deadline = time.monotonic() + 60
    while sum(len(arrivals.get(first + i, [])) for i in range(burst)) < n * burst:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.005)
    last = max(max(arrivals.get(first + i, [sent])) for i in range(burst))
    delivered = sum(len(arrivals.get(first + i, [])) for i in range(burst))
    await nc.close()
    return {
        "clients": n,
        "last_delivery_p50_ms": ms(statistics.median(last_delivery)),
        "last_delivery_p99_ms": ms(pct(last_delivery, 0.99)),
        "burst_events": burst,
        "burst_delivered_frames_per_s": round(delivered / (last - sent)),
        "burst_frames_missing": n * burst - delivered,
        "spaced_events_not_delivered_to_all": incomplete,
    }


async def reference_memory(bench: Bench, n: int) -> dict[str, float]:
    out = {}
    for kind in ("idle-websockets", "idle-uvicorn"):
        port = free_port()
        proc = bench.spawn(kind, str(port))
        deadline = time.monotonic() + 15
        while True:
            try:
                probe = await open_socket("127.0.0.1", port, "/")
                probe.close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        before = bench.rss_kib(proc.pid)
        clients = []
        for _ in range(0, n, 100):
            clients.extend(
                await asyncio.gather(*(open_socket("127.0.0.1", port, "/") for _ in range(100)))
            )
        await asyncio.sleep(2)
        out[kind] = round((bench.rss_kib(proc.pid) - before) / n, 2)
        for client in clients:
            client.close()
        proc.terminate()
    return out


async def run(stack: Any = None) -> dict[str, Any]:
    bench = Bench(stack)
    bench.start()
    try:
        return await measure(bench)
    finally:
        bench.stop()


async def measure(bench: Bench) -> dict[str, Any]:
    """P1–P5 on a started `bench` (stand-ins and the echo route are set up here)."""
    await bench.stand_ins()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": QUICK,
    }
    progress("P1/P2 round trips and throughput")
    results.update(await p1_p2(bench))
    progress("P3 handshakes")
    results["P3"] = await p3(bench)
    progress("P4/P5 1000 idle clients, fan-out, memory per connection")
    results.update(await p4_p5(bench))
    results["notes"] = bench.notes
    return results


def figures(r: dict[str, Any]) -> list[Figure]:
    """The table rows of the common report (bench/harness.py)."""
    g1, e1 = (
        r["P1"]["gateway_health_via_traefik"],
        r["P1"]["reference_bare_websockets_echo_via_traefik"],
    )
    g2 = r["P2"]["gateway_config_get_via_traefik_and_nats"]
    n2 = r["P2"]["reference_raw_nats_request_reply"]
    p3, p4, p5 = r["P3"]["upgrade_to_hello_via_traefik"], r["P4"], r["P5"]
    refs = p5["reference_kib_per_idle_connection"]

    def trip(x: dict[str, Any]) -> str:
        return f"{x['p50_ms']} / {x['p99_ms']} ms; {x['req_per_s_50_in_flight']} req/s"

    return [
        Figure(
            "P1",
            "WS round trip `health` via Traefik, p50 / p99; req/s with 50 in flight",
            trip(g1),
            f"bare websockets echo via Traefik {trip(e1)}",
            "≤ 0.35 / 0.8 ms; ≥ 15,000",
            g1["p50_ms"] <= 0.35 and g1["p99_ms"] <= 0.8 and g1["req_per_s_50_in_flight"] >= 15000,
        ),
        Figure(
            "P2",
            "WS round trip `config.get` (runtime over NATS) via Traefik, p50 / p99; req/s @50",
            trip(g2),
            f"raw NATS request/reply {trip(n2)}",
            "≤ 0.7 / 1.5 ms; ≥ 8,000",
            g2["p50_ms"] <= 0.7 and g2["p99_ms"] <= 1.5 and g2["req_per_s_50_in_flight"] >= 8000,
        ),
        Figure(
            "P3",
            "handshake: upgrade → hello (auth verified) via Traefik, median (p99)",
            f"{p3['median_ms']} ms ({p3['p99_ms']})",
            "—",
            "≤ 2 ms",
            p3["median_ms"] <= 2.0,
        ),
        Figure(
            "P4",
            f"one event → {p4['clients']} clients: last delivery p50 / p99; burst frames/s",
            f"{p4['last_delivery_p50_ms']} / {p4['last_delivery_p99_ms']} ms;"
            f" {p4['burst_delivered_frames_per_s']}/s",
            "—",
            "p99 ≤ 25 ms; ≥ 100k/s",
            p4["last_delivery_p99_ms"] <= 25 and p4["burst_delivered_frames_per_s"] >= 100_000,
        ),
        Figure(
            "P5",
            "KiB per idle connection (one ws-gateway process, 1000 sockets)",
            str(p5["gateway_kib_per_idle_connection"]),
            f"websockets server {refs['idle-websockets']}; uvicorn websockets-sansio"
            f" {refs['idle-uvicorn']}",
            "≤ 12 KiB",
            p5["gateway_kib_per_idle_connection"] <= 12,
        ),
    ]


def markdown(r: dict[str, Any]) -> str:
    p1, p2 = r["P1"], r["P2"]
    g1, e1 = p1["gateway_health_via_traefik"], p1["reference_bare_websockets_echo_via_traefik"]
    g2, n2 = p2["gateway_config_get_via_traefik_and_nats"], p2["reference_raw_nats_request_reply"]
    p5 = r["P5"]
    lines = [
        "# ws-gateway benchmarks",
        "",
        f"{r['date']}, {r['machine']['cpus']} CPUs, {r['machine']['platform']}, Python "
        f"{r['machine']['python']}{' (quick run)' if r['quick'] else ''}.",
        "",
        "| # | measure | ws-gateway | in-run reference | goal |",
        "|---|---|---|---|---|",
        f"| P1 | `health` via Traefik p50 / p99; req/s @50 | {g1['p50_ms']} / {g1['p99_ms']} ms;"
        f" {g1['req_per_s_50_in_flight']} | bare websockets echo via Traefik {e1['p50_ms']} /"
        f" {e1['p99_ms']} ms; {e1['req_per_s_50_in_flight']} | ≤0.35/0.8 ms; ≥15,000 |",
        f"| P2 | `config.get` via Traefik+NATS p50 / p99; req/s @50 | {g2['p50_ms']} /"
        f" {g2['p99_ms']} ms; {g2['req_per_s_50_in_flight']} | raw NATS request/reply"
        f" {n2['p50_ms']} / {n2['p99_ms']} ms; {n2['req_per_s_50_in_flight']} |"
        " ≤0.7/1.5 ms; ≥8,000 |",
        f"| P3 | upgrade → hello (auth verified) median | "
        f"{r['P3']['upgrade_to_hello_via_traefik']['median_ms']} ms | — | ≤2 ms |",
        f"| P4 | 1 event → {r['P4']['clients']} clients: last delivery p50 / p99; burst frames/s"
        f" | {r['P4']['last_delivery_p50_ms']} / {r['P4']['last_delivery_p99_ms']} ms;"
        f" {r['P4']['burst_delivered_frames_per_s']} | — | p99 ≤25 ms; ≥100k/s |",
        f"| P5 | KiB per idle connection | {p5['gateway_kib_per_idle_connection']} |"
        f" websockets server {p5['reference_kib_per_idle_connection']['idle-websockets']};"
        f" uvicorn websockets-sansio {p5['reference_kib_per_idle_connection']['idle-uvicorn']}"
        " | ≤12 |",
        f"| P5 | idle stack RSS (MiB) | {sum(p5['stack_rss_mib_by_process'].values())} "
        f"({p5['stack_rss_mib_by_process']}) | — | ≤400 |",
        "",
        "The load generator (bench/ws_lean_client.py) shares the 2 CPUs with Traefik, NATS and",
        "the services, for the gateway and its references alike.",
    ]
    if r["notes"]:
        lines += ["", "Stand-ins in this run:", *[f"- {n}" for n in r["notes"]]]
    return "\n".join(lines) + "\n"


def main() -> None:
    results = uvloop.run(run())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ws.json").write_text(json.dumps(results, indent=2))
    (RESULTS / "ws.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
