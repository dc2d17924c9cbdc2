"""`make bench` (`.venv/bin/python -m bench`): P1–P9 of docs/quality.md in one run, each figure
beside its reference measured in the same run; see bench/README.md.

    .venv/bin/python -m bench [--quick] [--only P1,P8,...] [--out DIR]

Order: P8 first (cold starts of fresh stacks, then the bare nats-server/Traefik/Caddy
reference), P9 (the rate limiter, on stacks of its own: one and two ratelimit replicas),
then one local stack for everything else: its idle memory (P5) before any load, the
ws-gateway measures (P1–P5), the HTTP measures (P6, P7).
An area that fails is recorded in the notes and the run goes on. Writes
`bench/results/<date>-<machine>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import uvloop

from bench import stack_bench
from bench.harness import RESULTS, Report, load_average, progress, shared_once
from bench.local_stack import BenchStack

ALL = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")
AREA_TIMEOUT_S = 900.0
BUSY_LOAD = 4.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (a busy machine)")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated ids, e.g. P1,P8")
    parser.add_argument("--out", default=str(RESULTS), help="results directory")
    args = parser.parse_args(argv)
    args.only = {p.strip().upper() for p in args.only.split(",") if p.strip()}
    unknown = args.only - set(ALL)
    if unknown:
        parser.error(f"unknown ids: {sorted(unknown)}")
    return args


def _guarded(report: Report, ids: str, work: Callable[[], None]) -> None:
    """Run one area; a failure becomes a note, the rest of the run goes on."""
    started = time.monotonic()
    try:
        work()
    except Exception as exc:
        report.notes.append(f"{ids} failed: {exc!r}")
        progress(f"{ids} FAILED: {exc!r}")
        traceback.print_exc()
    else:
        progress(f"{ids} done in {time.monotonic() - started:.1f} s")


def _async(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, AREA_TIMEOUT_S)

    return uvloop.run(bounded())


def run(args: argparse.Namespace) -> Report:
    report = Report(quick=args.quick)
    load = load_average()
    if load > BUSY_LOAD:
        message = f"load average {load:.1f} on {report.machine['cpus']} CPUs: figures will be noisy"
        if not args.quick:
            message += " (consider --quick)"
        report.notes.append(message)
        progress(message)
    wanted = args.only
    bare_rss: dict[str, int] = {}

    if "P8" in wanted:

        def p8() -> None:
            raw, figures = stack_bench.p8(runs=2 if args.quick else 3)
            bare_rss.update(raw["reference_bare_parts"]["idle_rss_kib"])
            report.add("P8", raw, figures)

        _guarded(report, "P8", p8)

    if "P9" in wanted:
        _ratelimit(report, args.quick)  # on stacks of its own (1 and 2 ratelimit replicas)
    if not wanted - {"P8", "P9"}:
        return report
    if "P5" in wanted and not bare_rss:
        bare = asyncio.run(stack_bench.bare_parts(1, stack_bench.SETTLE_S))
        bare_rss.update(bare["idle_rss_kib"])
    stack = BenchStack.start("--nats-monitor")  # P7 counts NATS messages from /varz
    try:
        if "P5" in wanted:

            def idle() -> None:
                raw, figure = stack_bench.idle_stack_memory(stack, bare_rss)
                report.add("P5_stack", raw, [figure])

            _guarded(report, "P5 (idle stack)", idle)
        if wanted & {"P1", "P2", "P3", "P4", "P5"}:
            _ws(report, stack, args.quick)
        if wanted & {"P6", "P7"}:
            _http(report, stack, args.quick, wanted)
    finally:
        progress("stopping the local stack")
        stack.stop()
    _keep_only(report, wanted)
    return report


def _ws(report: Report, stack: BenchStack, quick: bool) -> None:
    from bench import ws_bench

    def work() -> None:
        ws_bench.QUICK = quick
        results = _async(ws_bench.run(stack))
        report.add("ws", results, ws_bench.figures(results))
        report.notes.extend(f"ws: {n}" for n in results.get("notes", []))

    _guarded(report, "P1–P5 (ws-gateway)", work)


def _http(report: Report, stack: BenchStack, quick: bool, wanted: set[str]) -> None:
    """P6 (bench/http_proxy.py) and P7 (bench/http_agent.py, bench/agent_bench.py)."""
    from bench import agent_bench, http_agent, http_proxy
    from bench.local_stack import FAKE_API_KEY

    api_urls = stack.backend_urls("http-api")
    token = {"authorization": f"Bearer {stack.token}"}

    def _edge_secret(state_dir: Path) -> str:
        return (Path(state_dir) / "secrets" / "edge-secret").read_text().strip()

    def p6() -> None:
        fake = stack.fake
        fake_pid = {"fake": [fake._process.pid]} if fake._process else {}
        # Each process once: auth and ratelimit share one in the local stack.
        path_pids = shared_once(stack.pids, ("traefik", "ratelimit", "auth", "http-api"))
        targets = [
            http_proxy.Target(
                "direct",
                fake.base_url,
                "fake-small",
                {"authorization": f"Bearer {FAKE_API_KEY}"},
                fake_pid,
            ),
            http_proxy.Target(
                "http-api",
                f"{api_urls[0]}/v1",
                "fake/fake-small",
                # Straight to a replica: the edge proof Traefik would add, and the token.
                {"x-aisopod-edge": _edge_secret(stack.state_dir), **token},
                {"http-api": stack.pids["http-api"][:1]},
            ),
            http_proxy.Target(
                "traefik", f"{stack.info['http_url']}/v1", "fake/fake-small", token, path_pids
            ),
        ]
        sizes = {"seconds": 2.0, "requests": 500, "rounds": 1} if quick else {}
        args = argparse.Namespace(**({"seconds": 4.0, "requests": 2000, "rounds": 3} | sizes))
        results = _async(http_proxy.measure(targets, args))
        report.add("P6", results, http_proxy.figures(results))

    def p7() -> None:
        view = SimpleNamespace(
            http_url=stack.info["http_url"], admin_token=stack.token, http_api_urls=api_urls
        )
        count = 100 if quick else 300
        results = _async(http_agent.measure(view, stack.state_dir, stack.info["nats_url"], count))
        report.add("P7", results, http_agent.figures(results))
        ws, figures = _async(agent_bench.run(stack, quick))
        report.add("P7_ws", ws, figures)

    if "P6" in wanted:
        _guarded(report, "P6 (proxy path)", p6)
    if "P7" in wanted:
        _guarded(report, "P7 (agent turn)", p7)


def _ratelimit(report: Report, quick: bool) -> None:
    from bench import ratelimit_p9

    def work() -> None:
        argv = ["--samples", "1000", "--seconds", "2", "--scenarios", "1:primary", "2:primary"]
        args = ratelimit_p9.options(argv if quick else [])
        result = ratelimit_p9.run(args)
        report.add("P9", result, ratelimit_p9.figures(result))

    _guarded(report, "P9 (ratelimit)", work)


def _keep_only(report: Report, wanted: set[str]) -> None:
    """`--only P1`: the ws area measures P1–P5 together; keep the rows asked for."""
    report.figures = [f for f in report.figures if f.id in wanted]


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    progress(f"measuring {', '.join(sorted(args.only, key=lambda p: int(p[1:])))}")
    report = run(args)
    json_path, md_path = report.write(Path(args.out))
    print(report.markdown())
    progress(f"results: {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
