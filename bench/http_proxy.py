"""P6: the `/v1/chat/completions` proxy path's added latency and throughput (docs/quality.md).

    .venv/bin/python bench/http_proxy.py [--seconds 4] [--requests 2000] [--stack]
        [--baseline GIT_REF]

Starts, each in its own process: the fake upstream, a nats-server, one http-api (the real
service: uvicorn, uvloop, httptools) and the auth and ratelimit services it asks over NATS.
Then measures, in the same run and with the same client, the fake upstream called directly
(the reference) and through http-api with the edge proof Traefik would add and the admin
token (http-api verifies it with auth, cached, and asks ratelimit): at concurrency 1 (sequential
requests: p50/p99 latency, added = via − direct) and at concurrency 64 (requests/s for a
fixed time), non-streamed and streamed (time to the last byte). With `--stack`, the same
measurements also go through a private full stack (bench/http_stack.py) on the same fake
upstream: Traefik (one exchange: no forwardAuth) in front of it, using the admin token.
With `--baseline REF`, the same paths are also measured on the code of that git ref (its
`libs/*/src` and `services/*/src` exported to a temp dir and put first on the services'
PYTHONPATH; paths named `…-before`), round by round beside the current code, so a change
is measured before and after in one run under the same load.

The client is the proxy's own HTTP/1.1 pool (~35 µs of CPU per request), so the load
generator costs little of the 2 cores it shares with the servers. Results:
bench/results/http_proxy.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from aisopod_fake_upstream.harness import FakeUpstream
from aisopod_http_api.upstream.connection import UpstreamClosed
from aisopod_http_api.upstream.pool import UpstreamPool, parse_base_url
from tests.support.seeding import seed_deployment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_stack import PrivateStack  # a sibling script, not a package

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
FAKE_KEY = "sk-bench"
EDGE_SECRET = "bench-edge-secret"
BEFORE = "-before"  # the paths measured on the `--baseline` code
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
# What a request carries past Traefik: the edge proof and the client's bearer.
THROUGH_EDGE = {"x-aisopod-edge": EDGE_SECRET, "authorization": f"Bearer {ADMIN_TOKEN}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    from bench.harness import cpu_model

    model = cpu_model()
    return {
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "note": "shared 2-core machine: other work may run beside the benchmark",
    }


# -- the servers ------------------------------------------------------------------------
class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-http-")

    def nats(self) -> str:
        port = free_port()
        binary = Path(sys.executable).parent / "nats-server"
        self.procs.append(
            subprocess.Popen(
                [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", self.tmp.name],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(port)
        return f"nats://127.0.0.1:{port}"

    def http_api(
        self, nats_url: str, fake_url: str, prefix: str = "bench", pythonpath: str | None = None
    ) -> str:
        port = free_port()
        seed = Path(self.tmp.name) / f"seed-{prefix}.json"
        seed.write_text(
            json.dumps(
                {
                    "models": {
                        "providers": [
                            {
                                "id": "fake",
                                "kind": "openai",
                                "baseUrl": fake_url,
                                "apiKey": FAKE_KEY,
                                "models": [{"id": "fake-small"}],
                            }
                        ]
                    },
                    # The bench is one client sending thousands of requests: its limit
                    # decisions are still made (and measured), but never refuse it.
                    "limits": {"exemptCidrs": ["127.0.0.1/32"]},
                }
            )
        )
        env = {
            **os.environ,
            "AISOPOD_HOST": "127.0.0.1",
            "AISOPOD_NATS_URL": nats_url,
            "AISOPOD_CONFIG_FILE": str(seed),
            "AISOPOD_LOG_LEVEL": "WARNING",
            "AISOPOD_SUBJECT_PREFIX": prefix,
            "AISOPOD_EDGE_SECRET": EDGE_SECRET,
            "AISOPOD_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        # What the runtime does at first start: the state and the configuration document
        # (the services here may not write it and wait for it).
        asyncio.run(seed_deployment(nats_url, prefix, seed))
        # The services http-api asks for every request (over NATS, as in a stack).
        for module in ("aisopod_auth", "aisopod_ratelimit"):
            service_port = {"AISOPOD_PORT": str(free_port())}
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module],
                    env={**env, **service_port},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        env["AISOPOD_PORT"] = str(port)
        self.api_log = Path(self.tmp.name) / f"http-api-{prefix}.log"
        with open(self.api_log, "wb") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "aisopod_http_api"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120  # a loaded machine imports slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("http-api did not become ready")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.tmp.cleanup()


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


# -- the client -------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    base_url: str  # ends in /v1
    model: str
    headers: dict[str, str]
    pids: dict[str, list[int]] = field(default_factory=dict)  # the path's own processes

    def request(self, stream: bool) -> tuple[Any, bytes]:
        origin, path = parse_base_url(self.base_url)
        body = {"model": self.model, "messages": [{"role": "user", "content": "hello bench"}]}
        if stream:
            body["stream"] = True
        data = orjson.dumps(body)
        lines = [
            f"POST {path}/chat/completions HTTP/1.1",
            f"host: {origin.authority}",
            "content-type: application/json",
            f"content-length: {len(data)}",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        return origin, ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def one(pool: UpstreamPool, origin: Any, request: bytes) -> float | None:
    """Seconds for one whole response; None when the response broke off mid-body (counted
    and reported, not fatal: seen through Traefik, see docs/http-api.md)."""
    started = time.perf_counter()
    exchange = await pool.send(origin, request)
    if exchange.status != 200:
        raise RuntimeError(f"HTTP {exchange.status}: {await exchange.read_all(65536)!r}")
    try:
        while await exchange.read():
            pass
    except UpstreamClosed:
        return None
    return time.perf_counter() - started


def _kept(samples: list[float | None]) -> tuple[list[float], int]:
    kept = [s for s in samples if s is not None]
    broken = len(samples) - len(kept)
    if broken > len(samples) / 100:
        raise RuntimeError(f"{broken} of {len(samples)} responses broke off")
    return sorted(kept), broken


async def sequential(target: Target, stream: bool, count: int) -> dict[str, float]:
    pool = UpstreamPool()
    origin, request = target.request(stream)
    for _ in range(min(200, count)):
        await one(pool, origin, request)  # warm: connections, caches, JIT-free but still
    samples, broken = _kept([await one(pool, origin, request) for _ in range(count)])
    await pool.close()
    return {
        "p50_ms": samples[len(samples) // 2] * 1000,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
        "broken": broken,
    }


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_total(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in group) for name, group in pids.items()}


async def concurrent(target: Target, stream: bool, workers: int, seconds: float) -> dict:
    pool = UpstreamPool()
    origin, request = target.request(stream)
    await asyncio.gather(*(one(pool, origin, request) for _ in range(workers)))  # warm
    cpu_before = cpu_total(target.pids)
    deadline = time.perf_counter() + seconds
    samples: list[float | None] = []

    async def worker() -> None:
        while time.perf_counter() < deadline:
            samples.append(await one(pool, origin, request))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    cpu_after = cpu_total(target.pids)
    await pool.close()
    kept, broken = _kept(samples)
    return {
        "broken": broken,
        "rps": len(kept) / elapsed,
        "p50_ms": kept[len(kept) // 2] * 1000,
        "p99_ms": kept[int(len(kept) * 0.99)] * 1000,
        # CPU each process of the path spent per request (load-independent, unlike req/s)
        "cpu_us_per_request": {
            name: (cpu_after[name] - cpu_before[name]) / len(samples) * 1e6 for name in cpu_after
        },
    }


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best of the rounds (a shared machine only ever adds time): lowest latencies,
    highest rate, lowest CPU per request; the median rate is kept beside it."""
    c1 = {k: min(r["c1"][k] for r in runs) for k in runs[0]["c1"] if k != "broken"}
    broken = sum(r["c1"]["broken"] + r["c64"]["broken"] for r in runs)
    c64 = {
        "rps": max(r["c64"]["rps"] for r in runs),
        "rps_median": statistics.median(r["c64"]["rps"] for r in runs),
        "p50_ms": min(r["c64"]["p50_ms"] for r in runs),
        "p99_ms": min(r["c64"]["p99_ms"] for r in runs),
        "cpu_us_per_request": {
            name: min(r["c64"]["cpu_us_per_request"][name] for r in runs)
            for name in runs[0]["c64"]["cpu_us_per_request"]
        },
    }
    return {"c1": c1, "c64": c64, "rounds": len(runs), "broken": broken}


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stream in (False, True):
        mode = "stream" if stream else "non_stream"
        runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        # Round by round over the paths, so a drifting load on the shared machine weighs
        # on every path alike (each run warms its own connections first).
        for _ in range(args.rounds):
            for target in targets:
                try:
                    c1 = await sequential(target, stream, args.requests)
                    c64 = await concurrent(target, stream, 64, args.seconds)
                except Exception as exc:
                    raise RuntimeError(f"{mode} via {target.name} failed: {exc!r}") from exc
                runs[target.name].append({"c1": c1, "c64": c64})
        for target in targets:
            best = out[f"{mode}/{target.name}"] = _best(runs[target.name])
            c1, c64 = best["c1"], best["c64"]
            cpu = ", ".join(f"{k} {v:.0f} µs" for k, v in c64["cpu_us_per_request"].items())
            print(
                f"{mode:>10} {target.name:<8} c=1 p50 {c1['p50_ms']:.3f} ms  p99 "
                f"{c1['p99_ms']:.3f} ms | c=64 {c64['rps']:,.0f} req/s (median "
                f"{c64['rps_median']:,.0f}) p50 {c64['p50_ms']:.2f} ms | CPU/request: {cpu}"
                f" | broken {best['broken']}",
                flush=True,
            )
        direct = out[f"{mode}/direct"]["c1"]
        for target in targets[1:]:
            via = out[f"{mode}/{target.name}"]["c1"]
            added = {
                "p50_ms": via["p50_ms"] - direct["p50_ms"],
                "p99_ms": via["p99_ms"] - direct["p99_ms"],
            }
            out[f"{mode}/{target.name}"]["added_c1"] = added
            print(
                f"{mode:>10} {target.name:<8} added at c=1: p50 {added['p50_ms']:.3f} ms, "
                f"p99 {added['p99_ms']:.3f} ms",
                flush=True,
            )
    return out


def report(results: dict[str, Any], info: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": "P6 proxy path", "machine": info, "results": results}
    (RESULTS / "http_proxy.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# P6: /v1/chat/completions proxy path",
        "",
        f"Machine: {info['cpus']} CPUs, {info['cpu']}, Python {info['python']} "
        f"({info['note']}). Target: added p50 ≤ 1 ms, p99 ≤ 3 ms at c=1; ≥ 2,000 req/s at c=64.",
        "",
        f"Best of {next(iter(results.values()))['rounds']} rounds, taken round by round over "
        f"the paths; load average at the start: {info['load']}, at the end: {info['load_end']}."
        + (
            f" Paths named `…{BEFORE}` run the code of `{info['baseline']}` in the same run."
            if info.get("baseline")
            else ""
        ),
        "",
        "| mode | path | c=1 p50 ms | c=1 p99 ms | added p50 ms | added p99 ms | c=64 req/s "
        "(median) | CPU µs/request at c=64 | broken |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, value in results.items():
        mode, path = key.split("/")
        added = value.get("added_c1", {})
        lines.append(
            f"| {mode} | {path} | {value['c1']['p50_ms']:.3f} | {value['c1']['p99_ms']:.3f} | "
            f"{added.get('p50_ms', 0):.3f} | {added.get('p99_ms', 0):.3f} | "
            f"{value['c64']['rps']:,.0f} ({value['c64']['rps_median']:,.0f}) | "
            + ", ".join(f"{k} {v:.0f}" for k, v in value["c64"]["cpu_us_per_request"].items())
            + f" | {value['broken']} |"
        )
    (RESULTS / "http_proxy.md").write_text("\n".join(lines) + "\n")


def figures(results: dict[str, Any]) -> list[Any]:
    """The rows of the common report (`python -m bench`, bench/harness.py): each path's
    added latency and rate beside the fake upstream called directly in the same run."""
    from bench.harness import Figure

    rows = []
    for key, value in results.items():
        mode, path = key.split("/")
        if path == "direct" or path.endswith(BEFORE):
            continue
        direct = results[f"{mode}/direct"]
        added, c64 = value["added_c1"], value["c64"]
        where = "via Traefik (auth + ratelimit over NATS)" if path == "traefik" else path
        rows.append(
            Figure(
                "P6",
                f"/v1/chat/completions proxy, {mode.replace('_', '-')}, {where}: added p50 /"
                " p99 at c=1; req/s at c=64",
                f"+{added['p50_ms']:.3f} / +{added['p99_ms']:.3f} ms; {c64['rps']:,.0f}",
                f"fake upstream direct {direct['c1']['p50_ms']:.3f} /"
                f" {direct['c1']['p99_ms']:.3f} ms; {direct['c64']['rps']:,.0f}",
                "≤ 1 / 3 ms; ≥ 2,000",
                added["p50_ms"] <= 1 and added["p99_ms"] <= 3 and c64["rps"] >= 2000,
            )
        )
    return rows


def baseline_tree(ref: str, into: Path) -> str:
    """Export `ref`'s Python sources; the PYTHONPATH that runs them ahead of the venv's."""
    paths = sorted(
        line
        for line in subprocess.run(
            ["git", "-C", str(REPO), "ls-tree", "-d", "--name-only", ref, "libs/", "services/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    )
    sources = [f"{p}/src" for p in paths]
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, *sources], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    # The launcher finds the Control UI (its build and Caddyfile) beside its own sources.
    ui = into / "services" / "static-ui"
    ui.mkdir(parents=True, exist_ok=True)
    for name in ("dist", "fallback", "Caddyfile"):
        if (REPO / "services" / "static-ui" / name).exists() and not (ui / name).exists():
            (ui / name).symlink_to(REPO / "services" / "static-ui" / name)
    return os.pathsep.join(str(into / s) for s in sources if (into / s).is_dir())


def main() -> None:
    from bench.harness import shared_once

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0, help="per c=64 run")
    parser.add_argument("--requests", type=int, default=2000, help="per c=1 run")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many")
    parser.add_argument("--stack", action="store_true", help="also through a full stack")
    parser.add_argument("--baseline", help="a git ref: measure its code beside the current")
    args = parser.parse_args()
    info = machine()
    procs = Processes()
    baseline: str | None = None
    if args.baseline:
        info["baseline"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", args.baseline],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        baseline = baseline_tree(args.baseline, Path(procs.tmp.name))
    try:
        with (
            FakeUpstream(api_key=FAKE_KEY, subprocess=True) as fake,
            contextlib.ExitStack() as held,
        ):
            nats_url = procs.nats()
            fake_pid = {"fake": [fake._process.pid]} if fake._process else {}
            auth = {"authorization": f"Bearer {FAKE_KEY}"}
            targets = [Target("direct", fake.base_url, "fake-small", auth, fake_pid)]
            builds = [("", "bench", None)]
            if baseline is not None:
                builds.append((BEFORE, "benchb", baseline))
            for suffix, prefix, pythonpath in builds:
                api_url = procs.http_api(nats_url, fake.base_url, prefix, pythonpath)
                # http-api and the two services it asks per request (started just before it).
                auth_pid, ratelimit_pid, http_api_pid = (p.pid for p in procs.procs[-3:])
                api_pid = {
                    "http-api": [http_api_pid],
                    "auth": [auth_pid],
                    "ratelimit": [ratelimit_pid],
                }
                targets.append(
                    Target(
                        f"http-api{suffix}",
                        f"{api_url}/v1",
                        "fake/fake-small",
                        THROUGH_EDGE,
                        api_pid,
                    )
                )
            if args.stack:
                for suffix, _, pythonpath in builds:
                    stack = held.enter_context(
                        with_pythonpath(pythonpath, lambda: PrivateStack(fake.base_url, FAKE_KEY))
                    )
                    token = {"authorization": f"Bearer {stack.admin_token}"}
                    path = shared_once(stack.pids, ("traefik", "ratelimit", "auth", "http-api"))
                    targets.append(
                        Target(
                            f"traefik{suffix}",
                            f"{stack.http_url}/v1",
                            "fake/fake-small",
                            token,
                            path,
                        )
                    )
            import uvloop

            results = uvloop.run(measure(targets, args))
    except Exception:
        for log in Path(procs.tmp.name).glob("http-api-*.log"):
            print(f"--- {log.name} (tail) ---\n" + log.read_text()[-4000:])
        raise
    finally:
        procs.stop()
    info["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    report(results, info)
    print(f"results: {RESULTS / 'http_proxy.json'}")


@contextlib.contextmanager
def with_pythonpath(pythonpath: str | None, make: Any) -> Any:
    """Enter `make()` (a context manager that spawns processes) with PYTHONPATH set for
    what it spawns, and yield what it yields."""
    saved = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        manager = make()
        value = manager.__enter__()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    try:
        yield value
    finally:
        manager.__exit__(None, None, None)


if __name__ == "__main__":
    main()
