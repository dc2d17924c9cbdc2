"""The usage ledger: stream USAGE, one record per finished run that used a model.

Subject `<prefix>.usage.<agentId>.<sessionKey>` (each escaped as one token), so a read
can be narrowed to one agent or one session by the consumer's filter. A record's
`Nats-Msg-Id` is `usage-<runId>`: a publish repeated after a lost ack (NATS restart,
leader election) is dropped by the stream, so a run is never counted twice.

Reads of one session go to the stream: a consumer filtered on the session's subject,
started at `since` (JetStream seeks by time without scanning older records). Reads of the
whole ledger or of one agent (`usage.status`, `usage.cost`, `status`) go through a view
this process keeps: every record since the earliest `since` asked, as compact rows, and
the stream sequence it has read up to. A read first extends it with what the stream
stored since (a consumer from that sequence: O(new records)), so it is as current as a
direct read; only a read reaching further back than the view fills it again from there.
The stream's records never change and only its oldest go (its age limit, beyond any
window), so rows once read stay right; a stream made again (another creation time, or a
last sequence that went backwards) starts the view over. Past `VIEW_MAX_ROWS` rows the
view is dropped and reads go to the stream.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg

from aisopod import codec
from aisopod.bus import Bus
from aisopod.jsread import consume_all
from aisopod.state import stream_name
from aisopod.subjects import subject_token

# Records are stamped when the run concludes, a moment before the stream stores them; a
# consumer started this much earlier never misses one at the window's edge.
_START_SLACK_MS = 60_000
VIEW_MAX_ROWS = 200_000
"""About 60 MiB of rows (~300 bytes each); a gateway with more runs in the widest window
asked reads the stream instead."""
VIEW_HORIZON_MS = 367 * 86_400_000
"""Rows older than the longest window (366 days) are dropped from the view."""

# ts, agentId, model, provider, calls, prompt, completion, cache read, cache write
Row = tuple[int, str, str, str, int, int, int, int, int]


class UsageLedger:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "USAGE")
        self._rows: list[Row] = []
        self._covered_from: int | None = None
        """Every record stamped at or after this is in `_rows` (up to `_last_seq`)."""
        self._last_seq = 0
        self._made = ""
        """When the stream was created: another time means it was made again."""
        self._lock = asyncio.Lock()

    async def append(self, record: dict[str, Any]) -> None:
        subject = self.bus.subjects.usage(record["agentId"], record["sessionKey"])
        await self.bus.js.publish(
            subject, codec.dumps(record), headers={"Nats-Msg-Id": f"usage-{record['runId']}"}
        )

    async def read(
        self,
        since: int,
        until: int,
        *,
        agent_id: str | None = None,
        session_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """The records stamped in `[since, until)`, oldest first (a session's records carry
        every field; the others those the totals need)."""
        if session_key is None:
            async with self._lock:
                rows = await self._view(since)
            if rows is not None:
                return [
                    _record(row)
                    for row in rows
                    if since <= row[0] < until and (agent_id is None or row[1] == agent_id)
                ]
        return await self._read_stream(since, until, agent_id=agent_id, session_key=session_key)

    async def _read_stream(
        self, since: int, until: int, *, agent_id: str | None, session_key: str | None
    ) -> list[dict[str, Any]]:
        agent = subject_token(agent_id) if agent_id else "*"
        session = subject_token(session_key) if session_key else "*"
        messages = await self._consume(f"{agent}.{session}", start_ms=since)
        return [r for r in map(_decode, messages) if r and since <= int(r.get("ts") or 0) < until]

    async def _consume(
        self, filter_tail: str, *, start_ms: int | None = None, start_seq: int | None = None
    ) -> list[Msg]:
        start = None
        if start_ms is not None:
            start = datetime.fromtimestamp(max(start_ms - _START_SLACK_MS, 0) / 1000, UTC)
        return await consume_all(
            self.bus.js,
            self.stream,
            f"{self.bus.subjects.prefix}.usage.{filter_tail}",
            start_time=start,
            start_seq=start_seq,
        )

    async def _view(self, since: int) -> list[Row] | None:
        """The view, extended to the stream's end and covering `since`; None when too big."""
        info = await self.bus.js.stream_info(self.stream)
        last, made = info.state.last_seq, str(info.created)
        if (
            self._covered_from is None
            or since < self._covered_from
            or last < self._last_seq
            or made != self._made
        ):
            messages = await self._consume("*.*", start_ms=since)
            self._rows, self._covered_from, self._last_seq, self._made = [], since, 0, made
            self._add(messages, last)
        elif last > self._last_seq:
            self._add(await self._consume("*.*", start_seq=self._last_seq + 1), last)
        horizon = int(time.time() * 1000) - VIEW_HORIZON_MS
        if self._rows and self._rows[0][0] < horizon:
            self._rows = [row for row in self._rows if row[0] >= horizon]
            self._covered_from = max(self._covered_from, horizon)
        if len(self._rows) > VIEW_MAX_ROWS:
            self._rows, self._covered_from, self._last_seq = [], None, 0
            return None
        return self._rows

    def _add(self, messages: list[Msg], last_seen: int) -> None:
        for message in messages:
            record = _decode(message)
            if record:
                self._rows.append(_row(record))
        consumed = messages[-1].metadata.sequence.stream if messages else 0
        self._last_seq = max(self._last_seq, consumed, last_seen)


_shared_ledgers: dict[int, UsageLedger] = {}


def shared_ledger(bus: Bus) -> UsageLedger:
    """The process's one ledger (and view) for `bus`: `status` and the `usage.*` methods
    read through the same rows."""
    ledger = _shared_ledgers.get(id(bus))
    if ledger is None or ledger.bus is not bus:
        ledger = _shared_ledgers[id(bus)] = UsageLedger(bus)
    return ledger


def _decode(message: Msg) -> dict[str, Any] | None:
    try:
        record = codec.loads(message.data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


_strings: dict[str, str] = {}


def _shared(value: Any) -> str:
    """One string object per agent, model and provider name across all rows."""
    text = str(value or "")
    return _strings.setdefault(text, text) if len(_strings) < 100_000 else text


def _row(record: dict[str, Any]) -> Row:
    return (
        int(record.get("ts") or 0),
        _shared(record.get("agentId")),
        _shared(record.get("model")),
        _shared(record.get("provider")),
        int(record.get("calls") or 0),
        int(record.get("promptTokens") or 0),
        int(record.get("completionTokens") or 0),
        int(record.get("cacheReadTokens") or 0),
        int(record.get("cacheWriteTokens") or 0),
    )


def _record(row: Row) -> dict[str, Any]:
    return {
        "ts": row[0],
        "agentId": row[1],
        "model": row[2],
        "provider": row[3],
        "calls": row[4],
        "promptTokens": row[5],
        "completionTokens": row[6],
        "cacheReadTokens": row[7],
        "cacheWriteTokens": row[8],
    }
