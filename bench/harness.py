"""What every benchmark of `python -m bench` shares: the machine, percentiles, progress
lines, process memory, and the results file with each figure beside its in-run reference.

An area module (ws_bench, http_proxy, ratelimit_p9, stack_bench) measures and returns its
raw numbers plus a list of `Figure`s; `Report` writes both to
`bench/results/<date>-<machine>.json` and a Markdown table next to it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
_STARTED = time.monotonic()


# -- the machine ------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return model


def machine_info() -> dict[str, Any]:
    """Where the figures were measured. The load average matters: this machine is shared."""
    cpu = cpu_model()
    mem_mib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_mib = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "name": machine_name(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_mib": mem_mib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_name() -> str:
    """A file-name-safe label: `<cpus>cpu-<host>`."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.")[:40] or "local"
    return f"{os.cpu_count()}cpu-{host}"


def load_average() -> float:
    return os.getloadavg()[0]


# -- numbers ----------------------------------------------------------------------------
def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of an empty sample")
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def latency_summary(samples_s: list[float]) -> dict[str, Any]:
    """p50/p99 (ms) of round-trip times given in seconds."""
    return {
        "n": len(samples_s),
        "p50_ms": ms(statistics.median(samples_s)),
        "p99_ms": ms(percentile(samples_s, 0.99)),
    }


# -- progress ---------------------------------------------------------------------------
def progress(message: str) -> None:
    """One line on stderr with the elapsed time: a long run shows where it is."""
    print(f"[bench {time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- side-by-side (A/B) runs ------------------------------------------------------------
def median_per_process(blocks: list[dict[str, Any]], key: str) -> dict[str, float]:
    """The median over `blocks` of each process's figure under `key`; a process missing
    from a block (a side without it) counts 0 there."""
    names = sorted({name for block in blocks for name in block[key]})
    return {n: statistics.median(block[key].get(n, 0) for block in blocks) for n in names}


def write_ab_result(result: dict[str, Any], stem: str | None) -> None:
    """Print the summary; with a stem, keep the whole result as bench/results/<stem>.json."""
    print(json.dumps(result["summary"], indent=1))
    if stem:
        path = RESULTS / f"{stem}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        progress(f"wrote {path}")


# -- process memory ---------------------------------------------------------------------
def _status_field(pid: int, name: str, path: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def rss_kib(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def rss_anon_kib(pid: int) -> int:
    """The anonymous part of RSS (heap, stacks): for a Go binary, what its runtime holds;
    the rest is the binary's file pages."""
    return _status_field(pid, "RssAnon")


def processes_by_name(pids: dict[str, list[int]], launcher: int) -> dict[str, list[int]]:
    """The stack's processes, each once, under the names of everything it runs: a process
    listed under several names (auth and ratelimit share one in the local stack) becomes
    `auth+ratelimit`; the launcher is `launcher`, or `launcher+services` when it hosts
    them (`--small`)."""
    out = shared_once(pids, launcher=launcher)
    if not any(launcher in group for group in out.values()):
        out["launcher"] = [launcher]
    return out


def shared_once(
    pids: dict[str, list[int]], names: tuple[str, ...] = (), launcher: int | None = None
) -> dict[str, list[int]]:
    """`pids` (only `names`, when given) with each process once, under the joined names
    of what it runs (`auth+ratelimit`; `launcher+…` for the launcher's own pid)."""
    owners: dict[int, list[str]] = {}
    for name, group in pids.items():
        if names and name not in names:
            continue
        for pid in group:
            owners.setdefault(pid, []).append(name)
    out: dict[str, list[int]] = {}
    for pid, owned in owners.items():
        label = "+".join(owned)
        out.setdefault(f"launcher+{label}" if pid == launcher else label, []).append(pid)
    return out


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (the Python binary, libraries) split between
    the processes sharing them, so a sum over processes does not count them twice."""
    return _status_field(pid, "Pss", "smaps_rollup")


# -- results ----------------------------------------------------------------------------
@dataclass
class Figure:
    """One row of the table: our figure beside its reference from the same run."""

    id: str  # P1..P9
    measure: str
    value: str
    reference: str = "—"
    goal: str = ""
    met: bool | None = None  # None: not judged (missing parts, or no goal)


@dataclass
class Report:
    quick: bool = False
    machine: dict[str, Any] = field(default_factory=machine_info)
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S"))
    figures: list[Figure] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, area: str, raw: dict[str, Any], figures: list[Figure]) -> None:
        self.sections[area] = raw
        self.figures.extend(figures)

    def skip(self, ids: str, reason: str) -> None:
        self.notes.append(f"{ids} not measured: {reason}")
        progress(f"{ids} skipped: {reason}")

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "machine": {**self.machine, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
            "quick": self.quick,
            "figures": [asdict(f) for f in sorted(self.figures, key=_order)],
            "sections": self.sections,
            "notes": self.notes,
        }

    def markdown(self) -> str:
        m = self.machine
        lines = [
            "# aisopod benchmarks",
            "",
            f"{self.date} on `{m['name']}`: {m['cpus']} CPUs ({m['cpu'] or 'unknown model'}),"
            f" {m['mem_mib']} MiB, {m['platform']}, Python {m['python']};"
            f" load average at start {m['load_avg_at_start'][0]}"
            f", at end {round(os.getloadavg()[0], 2)}"
            f"{'; QUICK run (smaller samples)' if self.quick else ''}.",
            "",
            "| # | measure | aisopod | reference, same run | goal | met |",
            "|---|---|---|---|---|---|",
        ]
        for f in sorted(self.figures, key=_order):
            met = {True: "yes", False: "**no**", None: "—"}[f.met]
            lines.append(f"| {f.id} | {f.measure} | {f.value} | {f.reference} | {f.goal} | {met} |")
        lines += [
            "",
            "The load generators share the machine's CPUs with every process of the stack, "
            "for aisopod and its references alike; on a shared, loaded machine the figures "
            "are noisy (see bench/README.md).",
        ]
        if self.notes:
            lines += ["", "Notes:", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path = RESULTS) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{self.date[:10]}-{self.machine['name']}"
        json_path = directory / f"{stem}.json"
        md_path = directory / f"{stem}.md"
        json_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        md_path.write_text(self.markdown())
        return json_path, md_path


def _order(figure: Figure) -> tuple[int, str]:
    digits = "".join(c for c in figure.id if c.isdigit())
    return (int(digits) if digits else 99, figure.id)
