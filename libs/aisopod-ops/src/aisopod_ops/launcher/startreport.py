"""What the launcher says when a stack does not come up: for each child that was not
ready, whether it is still running or how it ended (and what died before it), what its
probe answers now, and the tail of its log. The report goes into the start error, so a test
that fails on a start carries the cause even after the state directory is gone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from aisopod_ops.launcher.probe import http_answer
from aisopod_ops.launcher.process import ChildSpec

# What `aisopod stack up` prints before its report (spawn.py finds the report by it).
FAILED_MARKER = "aisopod stack failed to start:"
TAIL_LINES = 25
TAIL_CHARS = 3000


class ReportedChild(Protocol):
    spec: ChildSpec

    def state(self) -> str: ...


def log_tail(path: Path, lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> str:
    """The last `lines` lines of `path` (at most `max_chars` characters), or why not."""
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            # Enough bytes for the lines asked: a line is rarely over 1 KiB.
            file.seek(max(0, size - lines * 1024))
            data = file.read()
    except OSError as exc:
        return f"(no log: {exc})"
    text = "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])
    if len(text) > max_chars:
        text = "…" + text[-max_chars:]
    return text or "(empty log)"


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


async def child_report(child: ReportedChild) -> str:
    """One not-ready child: its state, its probe's answer now, its log's tail."""
    lines = [f"--- {child.spec.name}: {child.state()}"]
    lines.extend([f"  {await http_answer(url)}" for url in child.spec.probe_urls])
    lines.append(f"  last lines of {child.spec.log_file}:")
    lines.append(_indented(log_tail(child.spec.log_file)))
    return "\n".join(lines)


async def failure_report(children: Sequence[ReportedChild], urls: Sequence[str]) -> str:
    """The report of every child in `children` and the answer of every URL in `urls`
    (checks through Traefik, of no one child)."""
    parts = [await child_report(child) for child in children]
    parts.extend([f"--- {await http_answer(url)}" for url in urls])
    return "\n".join(parts)
