"""P7 before and after a change, in one run: two local stacks, measured in turns.

    .venv/bin/python bench/turn_ab.py --before <git rev> [--rounds 6] [--turns 100]
        [--idempotency-key] [--surface ws|v1|v1-direct]

On a shared 2-core machine a P7 figure moves by a factor of two from one minute to the
next, so a change to the turn path is judged against the code before it in the same
minutes: the `--before` revision's Python sources (libs/*/src, services/*/src, exported
with `git archive`) run one local stack (PYTHONPATH puts them ahead of this checkout's
editable installs, for the launcher and every service it starts), this checkout runs the
other, both with one replica of each service and the benchmark seed (bench/local_stack.py).
Rounds alternate between them (after, before, after, …), each one `--turns` WebSocket
`agent` turns with `wait` through Traefik in fresh sessions (agent_bench.py's client; with
`--idempotency-key` each call carries one, as /v1 agent mode's and OpenClaw's do), and
per round: wall p50, NATS messages in and out per turn (nats-server /varz), and CPU per
turn of the runtime, nats-server, ws-gateway, http-api and Traefik (utime + stime from
/proc; the http-api is not on a WebSocket turn's path but receives what the turn
publishes). `--surface v1` sends P7's request instead, a non-streamed
`/v1/chat/completions` with `model: aisopod/main` through Traefik (http_agent.py's; a
fresh session each), and `v1-direct` the same straight to the http-api replica with the
edge proof, as Traefik forwards it. Writes `bench/results/<date>-turn-ab-<machine>.md` and
`.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.agent_bench import _round_trips, cpu_ms, nats_messages  # noqa: E402
from bench.harness import RESULTS, load_average, machine_name, progress, shared_once  # noqa: E402
from bench.local_stack import BenchStack  # noqa: E402
from bench.ws_lean_client import connect_gateway  # noqa: E402

MEASURED = ("runtime", "nats", "ws-gateway", "http-api", "traefik")
SURFACES = ("ws", "v1", "v1-direct")


def export_sources(rev: str, into: Path) -> str:
    """The revision's package sources under `into`; the PYTHONPATH that selects them."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", rev, "libs", "services"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    roots = sorted(p for p in into.glob("*/*/src") if p.is_dir())
    return os.pathsep.join(str(p) for p in roots)


def start(pythonpath: str | None) -> BenchStack:
    saved = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        return BenchStack.start("--nats-monitor", "--replicas", "1", with_fake=False)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def v1_request(stack: BenchStack, direct: bool) -> tuple[Any, bytes]:
    """P7's request (bench/http_agent.py): through Traefik, or to the replica with the
    edge proof Traefik adds. No `Idempotency-Key`: one fixed key would replay one run, and
    http-api gives every `agent` call a key of its own anyway."""
    from aisopod_http_api.upstream.pool import parse_base_url

    body = orjson.dumps(
        {"model": "aisopod/main", "messages": [{"role": "user", "content": "hello bench"}]}
    )
    headers = {"authorization": f"Bearer {stack.token}"}
    base = f"http://127.0.0.1:{stack.http_port}"
    if direct:
        base = stack.backend_urls("http-api")[0]
        headers["x-aisopod-edge"] = (stack.state_dir / "secrets" / "edge-secret").read_text()
    origin, prefix = parse_base_url(base)
    lines = [f"POST {prefix}/v1/chat/completions HTTP/1.1", f"host: {origin.authority}"]
    lines += [f"{k}: {v.strip()}" for k, v in headers.items()]
    lines += ["content-type: application/json", f"content-length: {len(body)}"]
    return origin, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def v1_round_trips(pool: Any, origin: Any, request: bytes, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        exchange = await pool.send(origin, request)
        body = await exchange.read_all(1 << 20)
        if exchange.status != 200:
            raise RuntimeError(f"P7 /v1: HTTP {exchange.status}: {body[:300]!r}")
        samples.append(time.perf_counter() - started)
    return samples


async def one_round(
    stack: BenchStack, turns: int, keyed: bool, surface: str = "ws"
) -> dict[str, Any]:
    if surface != "ws":
        return await one_v1_round(stack, turns, surface == "v1-direct")
    client, _ = await connect_gateway("127.0.0.1", stack.http_port, stack.token, subscribe=[])
    # Request ids repeat between the warm-up and the measured turns (p7-0, p7-1, …): a
    # prefix of their own keeps every measured turn in a new session.
    prefix = [f"agent:main:ab-{uuid.uuid4().hex[:8]}"]

    def frame(request_id: str) -> bytes:
        key = f"{prefix[0]}-{request_id}"
        params: dict[str, Any] = {"message": f"turn {request_id}", "sessionKey": key, "wait": True}
        if keyed:
            params["idempotencyKey"] = uuid.uuid4().hex
        call = {"jsonrpc": "2.0", "id": request_id, "method": "agent", "params": params}
        return orjson.dumps(call)

    pids = shared_once(stack.pids, MEASURED)
    try:
        await _round_trips(client, frame, 10)  # warm this socket and the runtime's paths
        prefix[0] = f"agent:main:ab-{uuid.uuid4().hex[:8]}"
        msgs, cpu = await nats_messages(stack), {k: cpu_ms(v) for k, v in pids.items()}
        load = load_average()
        samples = await _round_trips(client, frame, turns)
        msgs_after = await nats_messages(stack)
        cpu_after = {k: cpu_ms(v) for k, v in pids.items()}
    finally:
        client.close()
    return round_summary(load, samples, turns, (msgs, msgs_after), (cpu, cpu_after))


def round_summary(
    load: float,
    samples: list[float],
    turns: int,
    msgs: tuple[tuple[int, int], tuple[int, int]],
    cpu: tuple[dict[str, float], dict[str, float]],
) -> dict[str, Any]:
    """One round's figures per turn: `msgs` and `cpu` as read before and after it."""
    (in0, out0), (in1, out1) = msgs
    before, after = cpu
    return {
        "load": round(load, 1),
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "nats_in_per_turn": round((in1 - in0) / turns, 1),
        "nats_out_per_turn": round((out1 - out0) / turns, 1),
        "cpu_ms_per_turn": {k: round((after[k] - before[k]) / turns, 2) for k in before},
    }


async def one_v1_round(stack: BenchStack, turns: int, direct: bool) -> dict[str, Any]:
    from aisopod_http_api.upstream.pool import UpstreamPool

    origin, request = v1_request(stack, direct)
    pids = shared_once(stack.pids, MEASURED)
    pool = UpstreamPool()
    try:
        await v1_round_trips(pool, origin, request, 10)  # warm the connection and caches
        msgs, cpu = await nats_messages(stack), {k: cpu_ms(v) for k, v in pids.items()}
        load = load_average()
        samples = await v1_round_trips(pool, origin, request, turns)
        msgs_after = await nats_messages(stack)
        cpu_after = {k: cpu_ms(v) for k, v in pids.items()}
    finally:
        await pool.close()
    return round_summary(load, samples, turns, (msgs, msgs_after), (cpu, cpu_after))


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    return {
        "p50_ms_median_of_rounds": med([r["p50_ms"] for r in rounds]),
        "nats_in_per_turn": med([r["nats_in_per_turn"] for r in rounds]),
        "nats_out_per_turn": med([r["nats_out_per_turn"] for r in rounds]),
        "cpu_ms_per_turn": {k: med([r["cpu_ms_per_turn"][k] for r in rounds]) for k in MEASURED},
    }


def markdown(result: dict[str, Any]) -> str:
    b, a = result["before"]["summary"], result["after"]["summary"]
    keyed = ", an idempotency key each" if result.get("idempotency_key") else ""
    what = {
        "ws": "WebSocket `agent` turns (echo, `wait`, a fresh session each{keyed}) per round"
        " through Traefik",
        "v1": "non-streamed `/v1/chat/completions` agent turns (`aisopod/main`, echo, a fresh"
        " session each) per round through Traefik",
        "v1-direct": "non-streamed `/v1/chat/completions` agent turns (`aisopod/main`, echo,"
        " a fresh session each) per round straight to the http-api replica",
    }[result.get("surface", "ws")].format(keyed=keyed)
    lines = [
        f"# P7 before / after — {result['date']} on {result['machine']}",
        "",
        f"Before: `{result['before']['rev']}`; after: `{result['after']['rev']}`"
        f"{' (with uncommitted changes)' if result['after']['dirty'] else ''}. "
        f"{result['rounds']} rounds each, alternating, {result['turns']} {what}, one replica"
        f" of each service. Load average {result['load_start']} at the start,"
        f" {result['load_end']} at the end, on a shared 2-core machine: compare the columns,"
        " not the absolute figures.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| wall p50 (median of the rounds' p50) | {b['p50_ms_median_of_rounds']} ms |"
        f" {a['p50_ms_median_of_rounds']} ms |",
        f"| NATS messages in per turn (nats-server) | {b['nats_in_per_turn']} |"
        f" {a['nats_in_per_turn']} |",
        f"| NATS messages out per turn (deliveries) | {b['nats_out_per_turn']} |"
        f" {a['nats_out_per_turn']} |",
    ]
    for name in MEASURED:
        lines.append(
            f"| CPU per turn, {name} | {b['cpu_ms_per_turn'][name]} ms |"
            f" {a['cpu_ms_per_turn'][name]} ms |"
        )
    names = "/".join(MEASURED)
    lines += ["", f"Rounds in the order run (load, p50 ms, CPU ms per turn {names}):", ""]
    for side, r in result["order"]:
        cpu = "/".join(str(r["cpu_ms_per_turn"][k]) for k in MEASURED)
        lines.append(f"- {side}: load {r['load']}, {r['p50_ms']} ms, {cpu}")
    return "\n".join(lines) + "\n"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


async def run(
    before_rev: str, rounds: int, turns: int, keyed: bool, surface: str = "ws"
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_name(),
        "load_start": round(load_average(), 1),
        "rounds": rounds,
        "turns": turns,
        "idempotency_key": keyed,
        "surface": surface,
        "before": {"rev": git("rev-parse", "--short", before_rev), "rounds": []},
        "after": {
            "rev": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--", "libs", "services")),
            "rounds": [],
        },
        "order": [],
    }
    with tempfile.TemporaryDirectory(prefix="turn-ab-") as tmp:
        pythonpath = export_sources(before_rev, Path(tmp))
        progress(f"starting the stack of {before_rev} and this checkout's")
        stacks = {"before": start(pythonpath), "after": start(None)}
        try:
            for n in range(rounds * 2):
                side = ("after", "before")[n % 2]
                progress(f"round {n // 2 + 1}: {side}")
                r = await one_round(stacks[side], turns, keyed, surface)
                result[side]["rounds"].append(r)
                result["order"].append((side, r))
        finally:
            for stack in stacks.values():
                stack.stop()
    for side in ("before", "after"):
        result[side]["summary"] = summary(result[side]["rounds"])
    result["load_end"] = round(load_average(), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--idempotency-key", action="store_true", help="a key on every call")
    parser.add_argument("--surface", choices=SURFACES, default="ws", help="what a turn is")
    args = parser.parse_args()
    if args.idempotency_key and args.surface != "ws":
        parser.error("--idempotency-key is for --surface ws (a /v1 turn always carries one)")
    result = asyncio.run(
        run(args.before, args.rounds, args.turns, args.idempotency_key, args.surface)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    surface = "" if args.surface == "ws" else f"-{args.surface}"
    stem = f"{time.strftime('%Y-%m-%d-%H%M')}-turn-ab{surface}-{result['machine']}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
