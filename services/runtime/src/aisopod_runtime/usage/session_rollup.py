"""Hourly roll-ups of the usage ledger per session, for `usage.sessions`: folding an hour's
run records into per-session quarter-hour cells, and reading them back. Pure (the ledger
does the I/O; docs/runtime.md, "Usage, cost and budgets").

The hourly roll-ups of `rollup.py` have no session dimension. `usage.sessions` needs, per
session, its first and last stamp and its runs per quarter hour, agent and model, with the
cost split into its parts; this roll-up holds exactly that for one sealed hour. The same
rules as `rollup.py`: a pure function of the hour's records (so any replica writes the
same value), the cost and its parts summed per record at the folding price and tagged
with it (another price is recomputed exactly or the caller reads the records).

A busy hour may hold more sessions than one KV value can: the hour is stored as parts of
at most `PART_BYTES` each (key `sessions.<hour start>.<part>`), all carrying the count of
parts and a digest of the whole fold, so a reader never mixes parts of two folds (folds at
different prices differ) and treats an hour with a part missing as not folded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aisopod.catalogue.usage import QUARTER_MS
from aisopod.config.sections.providers import ModelCost as Price
from aisopod_runtime.usage.rollup import (
    StaleRollup,
    accumulate,
    add_record,
    exact_rates,
    fresh_tokens,
    hour_of,
    price_tag,
    sum_fields,
)

SHAPE = 1
"""The shape of the values; a value of another shape is folded again."""
PART_BYTES = 256 * 1024
"""The most JSON one part holds: a quarter of NATS's default 1 MiB message payload."""
KEY_PREFIX = "sessions"

# quarter of the hour (0-3), agent, model, runs, calls, prompt, completion, cache read,
# cache write, fresh prompt, cost, its input / output / cache-read / cache-write parts
# (nano-USD, each part rounded per record as `tally` does), tag of the price used
SessionCell = tuple[int, str, str, int, int, int, int, int, int, int, int, int, int, int, int, str]
# session key, agent of its first record in the hour, first and last stamp, its cells
SessionRow = tuple[str, str, int, int, list[SessionCell]]


class SessionHourPart(BaseModel):
    """KV `usage_hours` value, key `sessions.<hour start, ms>.<part>`."""

    model_config = ConfigDict(frozen=True)

    shape: Literal[1]
    hour: int
    made: str
    """When stream USAGE was created: a roll-up of a stream since made again is void."""
    part: int
    parts: int
    digest: str
    """Of the whole fold: parts of one hour with different digests come from two folds."""
    rows: list[SessionRow]
    """Sorted by key; a session too big for one part continues in the next (same key)."""


Span = tuple[str, int, int]
"""A session in a window: the agent of its first run, its first and last stamps."""


def add_span(spans: dict[str, Span], key: str, agent: str, first: int, last: int) -> None:
    """Widen the span of session `key` (its agent: that of the earliest run; the first of
    equals, in the order they are added)."""
    span = spans.get(key)
    if span is None:
        spans[key] = (agent, first, last)
    elif first < span[1]:
        spans[key] = (agent, first, max(last, span[2]))
    elif last > span[2]:
        spans[key] = (span[0], span[1], last)


def part_key(hour: int, part: int) -> str:
    return f"{KEY_PREFIX}.{hour}.{part}"


def cost_parts_nano(price: Price, record: dict[str, Any]) -> tuple[int, int, int, int]:
    """A record's cost split as `usage.sessions` shows it: fresh input, output, cache read,
    cache write, each rounded alone (so they may differ from the cost by a few nano-USD)."""
    read = int(record.get("cacheReadTokens") or 0)
    write = int(record.get("cacheWriteTokens") or 0)
    return (
        round(fresh_tokens(record) * price.input * 1000),
        round(int(record.get("completionTokens") or 0) * price.output * 1000),
        round(read * (price.cache_read if price.cache_read is not None else price.input) * 1000),
        round(write * (price.cache_write if price.cache_write is not None else price.input) * 1000),
    )


def entry_cost_parts_nano(price: Price, entry: dict[str, Any]) -> tuple[int, int, int, int]:
    """The parts of a roll-up cell's cost at `price`, exactly what its records' parts add
    up to: the stored sums at the folding price, else recomputed when the price's figures
    make every token a whole number of nano-USD (`rollup.cell_cost_nano`); else
    StaleRollup."""
    if entry["priceTag"] == price_tag(price):
        return (
            int(entry["inputNano"]),
            int(entry["outputNano"]),
            int(entry["readNano"]),
            int(entry["writeNano"]),
        )
    rates = exact_rates(price)
    if rates is None:
        raise StaleRollup(entry["model"])
    fresh, read, write, output = rates
    return (
        int(entry["freshTokens"]) * fresh,
        int(entry["completionTokens"]) * output,
        int(entry["cacheReadTokens"]) * read,
        int(entry["cacheWriteTokens"]) * write,
    )


def fold_sessions(
    records: Iterable[dict[str, Any]],
    hours: Iterable[int],
    made: str,
    price_of: Callable[[str], Price | None],
    cost_of: Callable[[Price | None, dict[str, Any]], int],
) -> dict[int, list[SessionHourPart]]:
    """The session roll-ups of `hours` (starts) from every record stamped in them (others
    are ignored), in parts; an hour without records gets one empty part."""
    wanted = set(hours)
    spans: dict[int, dict[str, Span]] = {h: {} for h in wanted}
    sums: dict[int, dict[tuple[str, int, str, str], list[int]]] = {h: {} for h in wanted}
    prices: dict[str, Price | None] = {}
    for record in records:
        ts = int(record.get("ts") or 0)
        hour = hour_of(ts)
        hour_spans = spans.get(hour)
        if hour_spans is None:
            continue
        key = str(record.get("sessionKey") or "")
        agent = str(record.get("agentId") or "")
        add_span(hour_spans, key, agent, ts, ts)
        model = str(record.get("model") or "")
        if model not in prices:
            prices[model] = price_of(model)
        price = prices[model]
        cell = sums[hour].setdefault((key, (ts - hour) // QUARTER_MS, agent, model), [0] * 12)
        add_record(cell, record, cost_of(price, record))
        if price is not None:
            for i, part in enumerate(cost_parts_nano(price, record), start=8):
                cell[i] += part
    out = {}
    for hour, hour_spans in spans.items():
        cells: dict[str, list[SessionCell]] = {}
        for (key, quarter, agent, model), s in sorted(sums[hour].items()):
            cells.setdefault(key, []).append(
                (quarter, agent, model, *s, price_tag(prices[model]))  # type: ignore[arg-type]
            )
        rows: list[SessionRow] = [
            (key, agent, first, last, cells[key])
            for key, (agent, first, last) in sorted(hour_spans.items())
        ]
        out[hour] = _parts(hour, made, rows)
    return out


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _parts(hour: int, made: str, rows: list[SessionRow]) -> list[SessionHourPart]:
    """`rows` packed into parts of at most `PART_BYTES` of rows each (a row bigger than
    that is split between parts by its cells)."""
    digest = hashlib.sha256(
        json.dumps(rows, separators=(",", ":")).encode() + made.encode()
    ).hexdigest()[:32]
    packed: list[list[SessionRow]] = [[]]
    used = 0
    for key, agent, first, last, cells in rows:
        head = _size([key, agent, first, last, []]) + 1
        chunk: list[SessionCell] = []
        chunk_size = head
        for cell in cells:
            size = _size(cell) + 1
            if used + chunk_size + size > PART_BYTES and (chunk or packed[-1]):
                if chunk:
                    packed[-1].append((key, agent, first, last, chunk))
                packed.append([])
                used, chunk, chunk_size = 0, [], head
            chunk.append(cell)
            chunk_size += size
        packed[-1].append((key, agent, first, last, chunk))
        used += chunk_size
    return [
        SessionHourPart(
            shape=SHAPE, hour=hour, made=made, part=i, parts=len(packed), digest=digest, rows=p
        )
        for i, p in enumerate(packed)
    ]


def whole(parts: Iterable[SessionHourPart], made: str) -> list[SessionHourPart] | None:
    """The parts of one hour in order when every part of one fold of stream `made` is
    there; None otherwise (the hour reads as not folded)."""
    by_index: dict[int, SessionHourPart] = {}
    for part in parts:
        by_index.setdefault(part.part, part)
    first = by_index.get(0)
    if first is None or first.made != made:
        return None
    out = []
    for i in range(first.parts):
        found = by_index.get(i)
        if found is None or found.digest != first.digest or found.parts != first.parts:
            return None
        out.append(found)
    return out


@dataclass(slots=True)
class HourSessions:
    """One sealed hour's session roll-up as the reads use it (kept in memory): spans and
    cells per session, and the cells of all sessions merged per quarter, agent and model
    (what the totals of a read without `key` add up)."""

    hour: int
    spans: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    cells: dict[str, list[SessionCell]] = field(default_factory=dict)
    merged: list[SessionCell] = field(default_factory=list)
    """Tuples, made entries when read (a dict per cell would weigh five times more)."""

    def entries(self, key: str) -> list[dict[str, Any]]:
        """The cells of session `key` as record-shaped entries."""
        return [_entry(self.hour, key, cell[1:], cell[0]) for cell in self.cells.get(key, [])]

    def merged_entries(self, agent_id: str | None) -> list[dict[str, Any]]:
        """The cells of all sessions (of `agent_id`'s, if given) as record-shaped entries."""
        return [
            _entry(self.hour, "", cell[1:], cell[0])
            for cell in self.merged
            if agent_id is None or cell[1] == agent_id
        ]


def index(hour: int, parts: Iterable[SessionHourPart]) -> HourSessions:
    out = HourSessions(hour)
    merged: dict[tuple[int, str, str, str], list[int]] = {}
    for part in parts:
        for key, agent, first, last, cells in part.rows:
            # A session continued from the previous part has that part's first stamp.
            add_span(out.spans, key, agent, first, last)
            out.cells.setdefault(key, []).extend(cells)
            for cell in cells:
                accumulate(merged, (cell[0], cell[1], cell[2], cell[15]), cell[3:15])
    out.merged = [
        (quarter, agent, model, *sums, tag)  # type: ignore[misc]
        for (quarter, agent, model, tag), sums in merged.items()
    ]
    return out


def _entry(hour: int, key: str, cell: tuple[Any, ...], quarter: int) -> dict[str, Any]:
    agent, model, *s, tag = cell
    return {
        "ts": hour + quarter * QUARTER_MS,
        "sessionKey": key,
        "agentId": agent,
        "model": model,
        **sum_fields(s),
        "inputNano": s[8],
        "outputNano": s[9],
        "readNano": s[10],
        "writeNano": s[11],
        "priceTag": tag,
    }


@dataclass(slots=True)
class SessionsRead:
    """What `usage.sessions` adds up over a window (`tally.session_rows`): the span of each
    session, each session's entries (records of the window's edges, cells of its sealed
    hours), and the entries of all sessions together."""

    spans: dict[str, Span]
    everything: list[dict[str, Any]]
    edges: dict[str, list[dict[str, Any]]]
    hours_of: dict[str, list[HourSessions]]

    def entries_of(self, key: str) -> list[dict[str, Any]]:
        out = list(self.edges.get(key, []))
        for hour in self.hours_of.get(key, []):
            out.extend(hour.entries(key))
        return out


def sessions_read(
    head: list[dict[str, Any]],
    hours: Iterable[HourSessions],
    tail: list[dict[str, Any]],
    agent_id: str | None = None,
    session_key: str | None = None,
) -> SessionsRead:
    """The read of a window from the records of its edges (`head` before its sealed hours,
    `tail` after, both already narrowed to `agent_id` / `session_key`) and the session
    roll-ups of its sealed `hours`, oldest first, narrowed here. A session key names its
    agent (`agent:<id>:…`), so a session's span tells its agent."""
    read = SessionsRead({}, [], {}, {})
    spans, edges, hours_of = read.spans, read.edges, read.hours_of

    def add_records(records: list[dict[str, Any]]) -> None:
        for record in records:
            ts = int(record["ts"])
            key = str(record.get("sessionKey") or "")
            add_span(spans, key, str(record.get("agentId") or ""), ts, ts)
            edges.setdefault(key, []).append(record)
        read.everything.extend(records)

    add_records(head)
    for hour in hours:
        if session_key is not None:
            span = hour.spans.get(session_key)
            if span is None or (agent_id is not None and span[0] != agent_id):
                continue
            add_span(spans, session_key, *span)
            hours_of.setdefault(session_key, []).append(hour)
            read.everything.extend(hour.entries(session_key))
            continue
        for key, (agent, first, last) in hour.spans.items():
            if agent_id is None or agent == agent_id:
                add_span(spans, key, agent, first, last)
                hours_of.setdefault(key, []).append(hour)
        read.everything.extend(hour.merged_entries(agent_id))
    add_records(tail)
    return read
