"""What holding the `sessions` bucket in memory costs per session, at the edge (ws-gateway's
`SessionIndex`, with and without the listing parts `sessions.list` needs) and in the owner
(the runtime's `SessionMemory`), measured with tracemalloc over N entries applied as the KV
watch would apply them (no NATS: the same `_apply` the watch calls).

Two shapes of entry: `short` (a short label and last message) and `full` (a 200-character
last message, the preview's maximum, plus label and model: the bound).

    .venv/bin/python -m bench.sessions_memory [--sessions 10000] [--out bench/results]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from nats.js.kv import KeyValue

from aisopod_runtime.sessions import SessionMemory
from aisopod_ws_gateway.sessionindex import SessionIndex
from bench.harness import RESULTS, load_average, machine_name


def stored(n: int, shape: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": f"agent:main:chat-{n:08d}-{n * 7919 % 100_000:05d}",
        "agentId": "main" if n % 3 else "ops",
        "createdAt": 1_796_000_000_000 + n,
        "updatedAt": 1_796_000_000_000 + n * 1_000,
    }
    if shape == "short":
        body |= {"label": f"chat {n}", "lastMessage": f"thanks, see you at {n % 24}:00"}
    else:
        body |= {
            "label": f"Project notes {n}",
            "lastMessage": ("Summarise the meeting and list the follow-ups " * 5)[:199] + "…",
            "model": "openai/gpt-4.1-mini",
            "thinkingLevel": "low",
        }
    return body


def entries(count: int, shape: str) -> list[KeyValue.Entry]:
    out = []
    for n in range(count):
        body = stored(n, shape)
        out.append(
            KeyValue.Entry(
                bucket="sessions",
                key="s." + body["key"].replace(":", "=3A"),
                value=orjson.dumps(body),
                revision=n + 1,
                delta=0,
                created=0,
                operation=None,
            )
        )
    return out


def measure(make: Callable[[], Any], feed: list[KeyValue.Entry]) -> int:
    """Bytes still allocated after applying `feed` to a fresh holder: what it keeps per
    session (the watch's entries were allocated before and are not kept)."""
    gc.collect()
    tracemalloc.start()
    holder = make()
    base = tracemalloc.get_traced_memory()[0]
    for entry in feed:
        holder._apply(entry)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del holder
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    count = args.sessions
    holders: dict[str, Callable[[], Any]] = {
        "edge index, listed (sessions.list at the edge)": lambda: SessionIndex(
            KeyValue("sessions", "KV_sessions", "$KV.sessions.", None, None),  # type: ignore[arg-type]
            listed_max=lambda: count,
        ),
        "edge index, marks only (past the listing cap)": lambda: SessionIndex(
            KeyValue("sessions", "KV_sessions", "$KV.sessions.", None, None),  # type: ignore[arg-type]
            listed_max=lambda: 0,
        ),
        "runtime SessionMemory (parsed entries)": lambda: SessionMemory(
            KeyValue("sessions", "KV_sessions", "$KV.sessions.", None, None),  # type: ignore[arg-type]
            max_entries=count,
        ),
    }
    rows: list[dict[str, Any]] = []
    for shape in ("short", "full"):
        feed = entries(count, shape)
        value_bytes = sum(len(e.value or b"") for e in feed) / count
        for name, make in holders.items():
            used = measure(make, feed)
            rows.append(
                {
                    "holder": name,
                    "shape": shape,
                    "stored_bytes_per_entry": round(value_bytes),
                    "bytes_per_session": round(used / count),
                    "mib_total": round(used / 2**20, 2),
                }
            )
    stamp = datetime.now(UTC)
    lines = [
        f"# sessions in memory — {stamp:%Y-%m-%d %H:%M} UTC on {machine_name()}",
        "",
        f"{count} sessions applied as the KV watch applies them; tracemalloc, Python "
        f"allocations only (load average {load_average():.1f}; memory does not depend on it).",
        "",
        "| holder | entry | stored bytes / entry | bytes / session | total |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['holder']} | {r['shape']} | {r['stored_bytes_per_entry']} | "
            f"{r['bytes_per_session']} | {r['mib_total']} MiB |"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{time.strftime('%Y-%m-%d-%H%M')}-sessions-memory-{machine_name()}"
    (out / f"{stem}.json").write_bytes(
        orjson.dumps({"sessions": count, "rows": rows}, option=orjson.OPT_INDENT_2)
    )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
