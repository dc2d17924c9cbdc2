"""The usage ledger: stream USAGE, one record per finished run that used a model, and its
hourly roll-ups (KV `usage_hours`: `rollup.py` per agent and model, `session_rollup.py`
per session for `usage.sessions`).

Subject `<prefix>.usage.<agentId>.<sessionKey>` (each escaped as one token), so a read
can be narrowed to one agent or one session by the consumer's filter. A record's
`Nats-Msg-Id` is `usage-<runId>`: a publish repeated after a lost ack (NATS restart,
leader election) is dropped by the stream, so a run is never counted twice.

Reads of one session go to the stream: a consumer filtered on the session's subject,
started at `since` (JetStream seeks by time without scanning older records). Reads of the
whole ledger or of one agent (`usage.status`, `usage.cost`, `status`) answer the whole
sealed hours of the window from their roll-ups and only the rest (the partial hours at
either edge, the last hour or so not sealed yet) from records: their cost follows the
number of hours, not runs.

Roll-ups are derived, never counted up: the runtime that first reads a sealed hour without
one folds it from the hour's records and writes it (`put`). The value is a function of
records that never change, so replicas folding the same hour at once write the same
thing, and a runtime stopped mid-fold leaves hours either written whole or not at all
(the next read folds those): nothing is counted twice or lost, with no lock. The run path
does not touch roll-ups. After an upgrade the first read folds every hour of its window
from the records (once, as costly as a read before roll-ups); a stream made again voids
the roll-ups of the old one (each carries the stream's creation time). Each process keeps
the roll-ups it read (sealed hours do not change) and reads the bucket once. The session
roll-ups (`usage.sessions`) follow the same rules, under keys `sessions.<hour>.<part>`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import StreamInfo
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aisopod import codec
from aisopod.bus import Bus
from aisopod.catalogue.usage import Bucket
from aisopod.config.sections.providers import ModelCost as Price
from aisopod.jsread import consume_all, snapshot
from aisopod.state import bucket_name, stream_name
from aisopod.subjects import subject_token
from aisopod_runtime.usage.rollup import (
    HOUR_MS,
    SEAL_MS,
    HourRollup,
    by_day,
    entries,
    fold,
    rolled_span,
)
from aisopod_runtime.usage.session_rollup import KEY_PREFIX as SESSIONS_KEY_PREFIX
from aisopod_runtime.usage.session_rollup import (
    HourSessions,
    SessionHourPart,
    SessionsRead,
    fold_sessions,
    index,
    part_key,
    sessions_read,
    whole,
)
from aisopod_runtime.usage.tally import cost_nano_usd

log = logging.getLogger("aisopod.runtime.usage")

# Records are stamped when the run concludes, a moment before the stream stores them; a
# consumer started this much earlier never misses one at the window's edge.
_START_SLACK_MS = 60_000
HORIZON_MS = 367 * 86_400_000
"""Roll-ups older than the longest window (366 days) are dropped from memory."""
_WRITES_AT_ONCE = 64
_STAMPS_MAX = 4096
_LOOK_UP_MAX = 6
"""Up to this many hours missing from memory are first looked up in the bucket."""


def _no_price(model_ref: str) -> Price | None:
    return None


class UsageLedger:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "USAGE")
        self.hours_bucket = bucket_name(bus.subjects.prefix, "usage_hours")
        self.price_of: Callable[[str], Price | None] = _no_price
        """The configured price of a model ref, for the cost a fold stores (set by the
        usage service; a cell folded at another price is still exact, `rollup.py`)."""
        self._kv: KeyValue | None = None
        self._rollups: dict[int, HourRollup] = {}
        self._days: dict[int, HourRollup] = {}
        """Whole days of `_rollups` merged (`rollup.by_day`)."""
        self._made: str | None = None
        """The stream creation time `_rollups` belong to (None: the bucket not read yet)."""
        self._lock = asyncio.Lock()
        self._stamps: dict[int, int] = {}
        """Stamps of the records at sequences probed (`_first_seq_stamped`)."""
        self._stamps_made = ""
        self._sessions: dict[int, HourSessions] = {}
        """Session roll-ups read or folded, by hour (`session_rollup.py`)."""
        self._sessions_made: str | None = None
        self._sessions_lock = asyncio.Lock()

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
        bucket: Bucket | None = None,
    ) -> list[dict[str, Any]]:
        """Entries adding up to the usage stamped in `[since, until)`: roll-up cells merged
        per `bucket` (None: over the whole span; `rollup.entries`) and records."""
        span = rolled_span(since, until, int(time.time() * 1000))
        kv = await self._bucket() if span is not None else None
        if span is None or kv is None:
            return await self.read_records(since, until, agent_id=agent_id)
        start, end = span
        info = await self.bus.js.stream_info(self.stream)
        rollups, head, tail = await asyncio.gather(
            self._hours(kv, info, start, end),
            self._between(info, since, start, agent_id),
            self._between(info, end, until, agent_id),
        )
        if bucket != "hour":  # whole days add up as one roll-up each
            rollups = by_day(rollups, self._days)
        return head + entries(rollups, bucket, agent_id) + tail

    async def read_sessions(
        self,
        since: int,
        until: int,
        *,
        agent_id: str | None = None,
        session_key: str | None = None,
    ) -> SessionsRead:
        """What `usage.sessions` adds up over `[since, until)`: the session roll-ups of its
        sealed whole hours and the records of the rest (`session_rollup.sessions_read`)."""
        span = rolled_span(since, until, int(time.time() * 1000))
        kv = await self._bucket() if span is not None else None
        if span is None or kv is None:
            records = await self.read_records(
                since, until, agent_id=agent_id, session_key=session_key
            )
            return sessions_read(records, [], [])
        start, end = span
        info = await self.bus.js.stream_info(self.stream)
        hours, head, tail = await asyncio.gather(
            self._session_hours(kv, info, start, end),
            self._between(info, since, start, agent_id, session_key),
            self._between(info, end, until, agent_id, session_key),
        )
        return sessions_read(head, hours, tail, agent_id, session_key)

    async def read_records(
        self,
        since: int,
        until: int,
        *,
        agent_id: str | None = None,
        session_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every record stamped in `[since, until)`, oldest first, from the stream."""
        agent = subject_token(agent_id) if agent_id else "*"
        session = subject_token(session_key) if session_key else "*"
        messages = await self._consume(f"{agent}.{session}", start_ms=since)
        return [r for r in map(_decode, messages) if r and since <= int(r.get("ts") or 0) < until]

    async def _between(
        self,
        info: StreamInfo,
        since: int,
        until: int,
        agent_id: str | None,
        session_key: str | None = None,
    ) -> list[dict[str, Any]]:
        """The records stamped in `[since, until)`, read from about `since` to about
        `until` only (an edge of a read: part of a sealed hour, or the present)."""
        if since >= until:
            return []
        agent = subject_token(agent_id) if agent_id else "*"
        session = subject_token(session_key) if session_key else "*"
        messages = await self._span(info, f"{agent}.{session}", since, until)
        return [r for r in map(_decode, messages) if r and since <= int(r.get("ts") or 0) < until]

    async def _span(self, info: StreamInfo, filter_tail: str, since: int, until: int) -> list[Msg]:
        """The messages of records stamped in `[since, until)` and a few around them.

        Records are stored in the order of their stamps, but for runs concluding at
        about the same time and publishes retried (seconds): `_START_SLACK_MS` before
        `since` and `SEAL_MS` past `until` hold every record of the span. The start is
        found by bisecting the stream on the stamps (a dozen or two reads), not on the
        times of storage, which a stream filled at once (an import, a benchmark) lacks."""
        first = await self._first_seq_stamped(info, since - _START_SLACK_MS)
        if first is None:
            return []
        stop_ms = until + SEAL_MS
        return await consume_all(
            self.bus.js,
            self.stream,
            f"{self.bus.subjects.prefix}.usage.{filter_tail}",
            start_seq=first,
            stop=lambda message: _stamp(message) >= stop_ms,
        )

    async def _first_seq_stamped(self, info: StreamInfo, ts_ms: int) -> int | None:
        """The first stream sequence of a record stamped at or after `ts_ms`; None if none.

        Bisects `[0, 2^k)`, so successive reads probe the same sequences and find most of
        their stamps in `_stamps` (records never change)."""
        first, last = max(info.state.first_seq, 1), info.state.last_seq
        made = str(info.created)
        if made != self._stamps_made or len(self._stamps) > _STAMPS_MAX:
            self._stamps, self._stamps_made = {}, made
        low, high = 0, 1 << max(last, 1).bit_length()
        while low < high:
            middle = (low + high) // 2
            if middle < first:
                stamp = -1
            elif middle > last:
                stamp = ts_ms
            else:
                stamp = self._stamps.get(middle, -2)
                if stamp == -2:
                    stamp = self._stamps[middle] = await self._stamp_at(middle)
            if stamp < ts_ms:
                low = middle + 1
            else:
                high = middle
        return max(low, first) if low <= last else None

    async def _first_stamp(self, info: StreamInfo) -> int | None:
        """The stamp of the stream's first record; None when it holds none."""
        if not info.state.messages:
            return None
        seq = max(info.state.first_seq, 1)
        stamp = self._stamps.get(seq)
        if stamp is None:
            stamp = self._stamps[seq] = await self._stamp_at(seq)
        return stamp

    async def _stamp_at(self, seq: int) -> int:
        try:
            message = await self.bus.js.get_msg(self.stream, seq=seq)
        except NotFoundError:  # aged out meanwhile: older than anything asked
            return -1
        return int((_decode_data(message.data) or {}).get("ts") or 0)

    async def _consume(self, filter_tail: str, *, start_ms: int) -> list[Msg]:
        return await consume_all(
            self.bus.js,
            self.stream,
            f"{self.bus.subjects.prefix}.usage.{filter_tail}",
            start_time=datetime.fromtimestamp(max(start_ms - _START_SLACK_MS, 0) / 1000, UTC),
        )

    # -- roll-ups ---------------------------------------------------------------------------
    async def _hours(
        self, kv: KeyValue, info: StreamInfo, start: int, end: int
    ) -> list[HourRollup]:
        """The roll-ups of the hours `[start, end)` (all sealed), folding those without."""
        async with self._lock:
            made = str(info.created)
            if made != self._made:
                self._rollups, self._days = {}, {}
                for entry in await snapshot(kv, "*"):  # not the `sessions.…` keys
                    rollup = _rollup(entry.value)
                    if rollup is not None and rollup.made == made:
                        self._rollups[rollup.hour] = rollup
                self._rollups = dict(sorted(self._rollups.items()))
                self._made = made
            missing = [h for h in range(start, end, HOUR_MS) if h not in self._rollups]
            if missing:
                # Hours ending before the stream's first record hold none (older records
                # aged out past any window): empty, known without a key.
                first = await self._first_stamp(info)
                bare = first - _START_SLACK_MS if first is not None else missing[-1] + HOUR_MS
                for hour in missing:
                    if hour + HOUR_MS <= bare:
                        self._rollups[hour] = HourRollup(hour=hour, made=made, cells=[])
                missing = [h for h in missing if h not in self._rollups]
            if 0 < len(missing) <= _LOOK_UP_MAX:  # another replica may have folded them
                for rollup in await asyncio.gather(*(self._stored(kv, h) for h in missing)):
                    if rollup is not None and rollup.made == made:
                        self._rollups[rollup.hour] = rollup
                missing = [h for h in missing if h not in self._rollups]
                self._rollups = dict(sorted(self._rollups.items()))
            if missing:
                await self._fold(kv, info, missing, made)
            horizon = int(time.time() * 1000) - HORIZON_MS
            if next(iter(self._rollups), horizon) < horizon:
                self._rollups = {h: r for h, r in self._rollups.items() if h >= horizon}
                self._days = {d: r for d, r in self._days.items() if d >= horizon}
            return [self._rollups[h] for h in range(start, end, HOUR_MS)]

    async def _session_hours(
        self, kv: KeyValue, info: StreamInfo, start: int, end: int
    ) -> list[HourSessions]:
        """The session roll-ups of the hours `[start, end)` (all sealed), folding those
        without (as `_hours` does for the hourly ones)."""
        async with self._sessions_lock:
            made = str(info.created)
            if made != self._sessions_made:
                self._sessions = {}
                parts: dict[int, list[SessionHourPart]] = {}
                for entry in await snapshot(kv, f"{SESSIONS_KEY_PREFIX}.>"):
                    part = _session_part(entry.value)
                    if part is not None:
                        parts.setdefault(part.hour, []).append(part)
                for hour, found in parts.items():
                    complete = whole(found, made)
                    if complete is not None:
                        self._sessions[hour] = index(hour, complete)
                self._sessions = dict(sorted(self._sessions.items()))
                self._sessions_made = made
            missing = [h for h in range(start, end, HOUR_MS) if h not in self._sessions]
            if missing:
                # Hours ending before the stream's first record hold none: empty.
                first = await self._first_stamp(info)
                bare = first - _START_SLACK_MS if first is not None else missing[-1] + HOUR_MS
                for hour in missing:
                    if hour + HOUR_MS <= bare:
                        self._sessions[hour] = HourSessions(hour)
                missing = [h for h in missing if h not in self._sessions]
            if 0 < len(missing) <= _LOOK_UP_MAX:  # another replica may have folded them
                stored = await asyncio.gather(*(self._stored_sessions(kv, h) for h in missing))
                for hour, found in zip(missing, stored, strict=True):
                    complete = whole(found, made)
                    if complete is not None:
                        self._sessions[hour] = index(hour, complete)
                missing = [h for h in missing if h not in self._sessions]
                self._sessions = dict(sorted(self._sessions.items()))
            if missing:
                await self._fold_sessions(kv, info, missing, made)
            horizon = int(time.time() * 1000) - HORIZON_MS
            if next(iter(self._sessions), horizon) < horizon:
                self._sessions = {h: r for h, r in self._sessions.items() if h >= horizon}
            return [self._sessions[h] for h in range(start, end, HOUR_MS)]

    async def _stored_sessions(self, kv: KeyValue, hour: int) -> list[SessionHourPart]:
        """The stored parts of an hour's session roll-up (as many as its first says)."""
        first = await self._stored_part(kv, hour, 0)
        if first is None:
            return []
        rest = await asyncio.gather(
            *(self._stored_part(kv, hour, i) for i in range(1, first.parts))
        )
        return [first, *(p for p in rest if p is not None)]

    async def _stored_part(self, kv: KeyValue, hour: int, part: int) -> SessionHourPart | None:
        try:
            entry = await kv.get(part_key(hour, part))
        except KeyNotFoundError:
            return None
        return _session_part(entry.value)

    async def _fold_sessions(
        self, kv: KeyValue, info: StreamInfo, hours: list[int], made: str
    ) -> None:
        records = await self._span(info, "*.*", hours[0], hours[-1] + HOUR_MS)
        folded = fold_sessions(
            filter(None, map(_decode, records)), hours, made, self.price_of, cost_nano_usd
        )
        parts = [part for hour_parts in folded.values() for part in hour_parts]
        for at in range(0, len(parts), _WRITES_AT_ONCE):
            chunk = parts[at : at + _WRITES_AT_ONCE]
            await asyncio.gather(
                *(kv.put(part_key(p.hour, p.part), p.model_dump_json().encode()) for p in chunk)
            )
        for hour, hour_parts in folded.items():
            self._sessions[hour] = index(hour, hour_parts)
        self._sessions = dict(sorted(self._sessions.items()))
        log.info("usage: folded sessions of %d hours from %d records", len(hours), len(records))

    async def _stored(self, kv: KeyValue, hour: int) -> HourRollup | None:
        try:
            entry = await kv.get(str(hour))
        except KeyNotFoundError:
            return None
        return _rollup(entry.value)

    async def _fold(self, kv: KeyValue, info: StreamInfo, hours: list[int], made: str) -> None:
        records = await self._span(info, "*.*", hours[0], hours[-1] + HOUR_MS)
        folded = fold(
            filter(None, map(_decode, records)), hours, made, self.price_of, cost_nano_usd
        )
        values = list(folded.values())
        for at in range(0, len(values), _WRITES_AT_ONCE):
            chunk = values[at : at + _WRITES_AT_ONCE]
            await asyncio.gather(
                *(kv.put(str(r.hour), r.model_dump_json().encode()) for r in chunk)
            )
        self._rollups.update(folded)
        self._rollups = dict(sorted(self._rollups.items()))
        log.info("usage: folded %d hours from %d records", len(hours), len(records))

    async def _bucket(self) -> KeyValue | None:
        if self._kv is None:
            try:
                self._kv = await self.bus.js.key_value(self.hours_bucket)
            except BucketNotFoundError:
                log.warning("usage: no bucket %s; reads add up records", self.hours_bucket)
                return None
        return self._kv


_shared_ledgers: dict[int, UsageLedger] = {}


def shared_ledger(bus: Bus) -> UsageLedger:
    """The process's one ledger (and roll-ups) for `bus`: `status` and the `usage.*`
    methods read through the same one."""
    ledger = _shared_ledgers.get(id(bus))
    if ledger is None or ledger.bus is not bus:
        ledger = _shared_ledgers[id(bus)] = UsageLedger(bus)
    return ledger


def _decode(message: Msg) -> dict[str, Any] | None:
    return _decode_data(message.data)


def _decode_data(data: bytes | None) -> dict[str, Any] | None:
    try:
        record = codec.loads(data or b"")
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _stamp(message: Msg) -> int:
    return int((_decode(message) or {}).get("ts") or 0)


def _session_part(value: bytes | None) -> SessionHourPart | None:
    try:
        return SessionHourPart.model_validate_json(value or b"")
    except ValidationError:  # another shape (`session_rollup.SHAPE`): folded again
        return None


def _rollup(value: bytes | None) -> HourRollup | None:
    try:
        return HourRollup.model_validate_json(value or b"")
    except ValidationError:
        return None
