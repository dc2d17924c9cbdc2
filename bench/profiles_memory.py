"""Idle memory of the local stack's profiles, started one after another in one run:
the default (one replica of each service), `--replicas 2` (two of each edge service, as
Compose and Kubernetes run them), and `--small` (the launcher hosting the five Python
services and the Control UI in its own process; no Caddy).

Per profile: RSS of every process (the launcher included), its anonymous part (heap and
stacks) and PSS (shared pages counted once), after the stack settled idle. The rest of RSS
is file pages (the binaries and libraries), and how many of those a process maps depends on
the kernel's page cache, not on the process: right after an install, with the binaries
freshly written and wholly cached, Traefik and Caddy map ~30 and ~8 MiB more of them than
after the cache was dropped (docs/deployment.md, "Memory and start-up budget"). The
anonymous figure does not move with it. `rounds` repeats the three in turn (alternating, so
the machine's load hits them alike).

    .venv/bin/python -m bench.profiles_memory [--rounds 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, processes_by_name, progress, pss_kib, rss_anon_kib, rss_kib
from bench.local_stack import BenchStack

SETTLE_S = 3.0
PROFILES: dict[str, tuple[str, ...]] = {
    "default": (),
    "replicas-2": ("--replicas", "2"),
    "small": ("--small",),
}


def measure(args: tuple[str, ...]) -> dict[str, Any]:
    stack = BenchStack.start(*args, with_fake=False)
    try:
        time.sleep(SETTLE_S)  # RSS settles for a moment after readiness
        # Each process once: auth and ratelimit share one in the default profile, and in
        # `--small` the launcher is the services' process.
        pids = processes_by_name(stack.pids, stack.proc.pid)
        rss = {name: [rss_kib(pid) for pid in group] for name, group in pids.items()}
        pss = sum(pss_kib(pid) for group in pids.values() for pid in group)
        anon = sum(rss_anon_kib(pid) for group in pids.values() for pid in group)
    finally:
        stack.stop()
    return {
        "processes": sum(len(group) for group in rss.values()),
        "rss_mib_by_process": {k: [round(v / 1024, 1) for v in vs] for k, vs in rss.items()},
        "rss_mib_total": round(sum(sum(vs) for vs in rss.values()) / 1024, 1),
        "pss_mib_total": round(pss / 1024, 1),
        "rss_anon_mib_total": round(anon / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in PROFILES}
    load = [round(os.getloadavg()[0], 1)]
    for _ in range(args.rounds):
        for name, launcher_args in PROFILES.items():
            progress(f"profile {name}")
            runs[name].append(measure(launcher_args))
            load.append(round(os.getloadavg()[0], 1))
    lines = [
        "# Idle memory of the local stack's profiles",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} CPUs, load average "
        f"{min(load)}–{max(load)}; {args.rounds} rounds, profiles alternating; each stack idle "
        f"{SETTLE_S:.0f} s after all-ready; the launcher counted.",
        "",
        "| profile | processes | RSS total (MiB) | of it anonymous | PSS total (MiB) "
        "| RSS by process (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, results in runs.items():
        last = results[-1]
        parts = ", ".join(
            f"{k} {'+'.join(str(v) for v in vs)}" for k, vs in last["rss_mib_by_process"].items()
        )
        lines.append(
            f"| `{name}` | {last['processes']} "
            f"| {' / '.join(str(r['rss_mib_total']) for r in results)} "
            f"| {' / '.join(str(r['rss_anon_mib_total']) for r in results)} "
            f"| {' / '.join(str(r['pss_mib_total']) for r in results)} | {parts} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profiles_memory.json").write_text(
        json.dumps({"load_avg": load, "runs": runs}, indent=2) + "\n"
    )
    (args.out / "profiles_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
