"""`make bench` (`.venv/bin/python -m bench`): P1–P9 of quality.md in one run, each figure
beside its reference measured in the same run; see bench/README.md.

    .venv/bin/python -m bench [--quick] [--only P1,P8,...] [--out DIR]

Order: P8 first (cold starts of fresh stacks, then the bare nats-server/Traefik/Caddy
reference), then one local stack for everything else: its idle memory (P5) before any
load, the ws-gateway measures (P1–P5), the HTTP measures (P6, P7), the rate limiter (P9).
An area that fails is recorded in the notes and the run goes on. Writes
`bench/results/<date>-<machine>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import stack_bench
from bench.harness import RESULTS, Report, load_average, progress
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


def _module(name: str) -> Any:
    """An area module that may not be on this branch yet."""
    if importlib.util.find_spec(f"bench.{name}") is None:
        return None
    return importlib.import_module(f"bench.{name}")


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

    if not wanted - {"P8"}:
        return report
    if "P5" in wanted and not bare_rss:
        bare = asyncio.run(stack_bench._bare_parts(1, stack_bench.SETTLE_S))
        bare_rss.update(bare["idle_rss_kib"])
    stack = BenchStack.start()
    try:
        if "P5" in wanted:

            def idle() -> None:
                raw, figure = stack_bench.idle_stack_memory(stack, bare_rss)
                report.add("P5_stack", raw, [figure])

            _guarded(report, "P5 (idle stack)", idle)
        if wanted & {"P1", "P2", "P3", "P4", "P5"}:
            _ws(report, stack, args.quick)
        if wanted & {"P6", "P7"}:
            _http(report, stack, args.quick)
        if "P9" in wanted:
            _ratelimit(report, stack, args.quick)
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


def _http(report: Report, stack: BenchStack, quick: bool) -> None:
    if _module("http_proxy") is None:
        report.skip("P6/P7", "bench/http_proxy.py is not on this branch yet")
        return
    report.skip("P6/P7", "bench/http_proxy.py has no common-harness entry point yet")


def _ratelimit(report: Report, stack: BenchStack, quick: bool) -> None:
    if _module("ratelimit_p9") is None:
        report.skip("P9", "bench/ratelimit_p9.py is not on this branch yet")
        return
    report.skip("P9", "bench/ratelimit_p9.py has no common-harness entry point yet")


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
