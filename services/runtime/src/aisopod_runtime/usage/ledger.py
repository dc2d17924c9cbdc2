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
roll-ups (`usage.sessions`) follow the same rules, under keys `sessions.<hour>.<part>`,
through the same code (`RollupStore`, one per kind).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from nats.aio.msg import Msg
from nats.js.api import StreamInfo
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

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


class _Hour(Protocol):  # what a store keys its roll-ups by
    @property
    def hour(self) -> int: ...


T = TypeVar("T", bound=_Hour)
M = TypeVar("M", bound=BaseModel)
PriceOf = Callable[[str], Price | None]


@dataclass(eq=False)  # one per kind and ledger: compared by identity
class RollupStore(Generic[T]):
    """The roll-ups of one kind (hourly, per session) this process read or folded, by hour,
    and the pieces that differ between the kinds: `UsageLedger._rolled` is the one code
    path of both."""

    load: Callable[[KeyValue, str], Awaitable[list[T]]]
    """Every whole roll-up stored for the stream made at `made`."""
    look_up: Callable[[KeyValue, int, str], Awaitable[T | None]]
    """The stored roll-up of one hour, if whole and of `made`."""
    fold: Callable[
        [Iterable[dict[str, Any]], list[int], str, PriceOf],
        tuple[dict[int, T], list[tuple[str, BaseModel]]],
    ]
    """The roll-ups of hours from their records, and the KV values to write (key, value)."""
    empty: Callable[[int, str], T]
    log_folded: str
    hours: dict[int, T] = field(default_factory=dict)
    """Sorted by hour (the horizon trim looks at the first)."""
    days: dict[int, T] = field(default_factory=dict)
    """Whole days of `hours` merged (the hourly kind's `rollup.by_day`): they go with them."""
    made: str | None = None
    """The stream creation time `hours` belong to (None: the bucket not read yet)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class UsageLedger:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "USAGE")
        self.hours_bucket = bucket_name(bus.subjects.prefix, "usage_hours")
        self.price_of: Callable[[str], Price | None] = _no_price
        """The configured price of a model ref, for the cost a fold stores (set by the
        usage service; a cell folded at another price is still exact, `rollup.py`)."""
        self._kv: KeyValue | None = None
        self._hour_rollups = RollupStore[HourRollup](
            load=_load_hours,
            look_up=_look_up_hour,
            fold=_fold_hours,
            empty=lambda hour, made: HourRollup(hour=hour, made=made, cells=[]),
            log_folded="usage: folded %d hours from %d records",
        )
        self._session_rollups = RollupStore[HourSessions](
            load=_load_session_hours,
            look_up=_look_up_session_hour,
            fold=_fold_session_hours,
            empty=lambda hour, made: HourSessions(hour),
            log_folded="usage: folded sessions of %d hours from %d records",
        )
        self._stamps: dict[int, int] = {}
        """Stamps of the records at sequences probed (`_first_seq_stamped`)."""
        self._stamps_made = ""

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
            self._rolled(self._hour_rollups, kv, info, start, end),
            self._between(info, since, start, agent_id),
            self._between(info, end, until, agent_id),
        )
        if bucket != "hour":  # whole days add up as one roll-up each
            rollups = by_day(rollups, self._hour_rollups.days)
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
            self._rolled(self._session_rollups, kv, info, start, end),
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
    async def _rolled(
        self, store: RollupStore[T], kv: KeyValue, info: StreamInfo, start: int, end: int
    ) -> list[T]:
        """The roll-ups of the hours `[start, end)` (all sealed), folding those without."""
        async with store.lock:
            made = str(info.created)
            if made != store.made:
                store.hours, store.days = {}, {}
                for rollup in await store.load(kv, made):
                    store.hours[rollup.hour] = rollup
                store.hours = dict(sorted(store.hours.items()))
                store.made = made
            missing = [h for h in range(start, end, HOUR_MS) if h not in store.hours]
            if missing:
                # Hours ending before the stream's first record hold none (older records
                # aged out past any window): empty, known without a key.
                first = await self._first_stamp(info)
                bare = first - _START_SLACK_MS if first is not None else missing[-1] + HOUR_MS
                for hour in missing:
                    if hour + HOUR_MS <= bare:
                        store.hours[hour] = store.empty(hour, made)
                missing = [h for h in missing if h not in store.hours]
            if 0 < len(missing) <= _LOOK_UP_MAX:  # another replica may have folded them
                for found in await asyncio.gather(*(store.look_up(kv, h, made) for h in missing)):
                    if found is not None:
                        store.hours[found.hour] = found
                missing = [h for h in missing if h not in store.hours]
                store.hours = dict(sorted(store.hours.items()))
            if missing:
                await self._fold(store, kv, info, missing, made)
            horizon = int(time.time() * 1000) - HORIZON_MS
            if next(iter(store.hours), horizon) < horizon:
                store.hours = {h: r for h, r in store.hours.items() if h >= horizon}
                store.days = {d: r for d, r in store.days.items() if d >= horizon}
            return [store.hours[h] for h in range(start, end, HOUR_MS)]

    async def _fold(
        self, store: RollupStore[T], kv: KeyValue, info: StreamInfo, hours: list[int], made: str
    ) -> None:
        records = await self._span(info, "*.*", hours[0], hours[-1] + HOUR_MS)
        folded, writes = store.fold(filter(None, map(_decode, records)), hours, made, self.price_of)
        for at in range(0, len(writes), _WRITES_AT_ONCE):
            chunk = writes[at : at + _WRITES_AT_ONCE]
            await asyncio.gather(
                *(kv.put(key, value.model_dump_json().encode()) for key, value in chunk)
            )
        store.hours.update(folded)
        store.hours = dict(sorted(store.hours.items()))
        log.info(store.log_folded, len(hours), len(records))

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


def _parse(model: type[M], value: bytes | None) -> M | None:
    try:
        return model.model_validate_json(value or b"")
    except ValidationError:  # another shape (e.g. `session_rollup.SHAPE`): folded again
        return None


async def _value(kv: KeyValue, key: str) -> bytes | None:
    try:
        return (await kv.get(key)).value
    except KeyNotFoundError:
        return None


# The hourly kind (`rollup.py`): key `<hour>`, one value an hour.
async def _load_hours(kv: KeyValue, made: str) -> list[HourRollup]:
    found = (_parse(HourRollup, e.value) for e in await snapshot(kv, "*"))  # not `sessions.…`
    return [r for r in found if r is not None and r.made == made]


async def _look_up_hour(kv: KeyValue, hour: int, made: str) -> HourRollup | None:
    rollup = _parse(HourRollup, await _value(kv, str(hour)))
    return rollup if rollup is not None and rollup.made == made else None


def _fold_hours(
    records: Iterable[dict[str, Any]], hours: list[int], made: str, price_of: PriceOf
) -> tuple[dict[int, HourRollup], list[tuple[str, BaseModel]]]:
    folded = fold(records, hours, made, price_of, cost_nano_usd)
    return folded, [(str(r.hour), r) for r in folded.values()]


# The session kind (`session_rollup.py`): keys `sessions.<hour>.<part>`, an hour counting
# only when all its parts of one fold are there (`whole`).
async def _load_session_hours(kv: KeyValue, made: str) -> list[HourSessions]:
    parts: dict[int, list[SessionHourPart]] = {}
    for entry in await snapshot(kv, f"{SESSIONS_KEY_PREFIX}.>"):
        part = _parse(SessionHourPart, entry.value)
        if part is not None:
            parts.setdefault(part.hour, []).append(part)
    wholes = ((hour, whole(found, made)) for hour, found in parts.items())
    return [index(hour, complete) for hour, complete in wholes if complete is not None]


async def _look_up_session_hour(kv: KeyValue, hour: int, made: str) -> HourSessions | None:
    """The hour from its stored parts (as many as its first says)."""
    first = _parse(SessionHourPart, await _value(kv, part_key(hour, 0)))
    if first is None:
        return None
    rest = await asyncio.gather(*(_value(kv, part_key(hour, i)) for i in range(1, first.parts)))
    parsed = (_parse(SessionHourPart, value) for value in rest)
    complete = whole([first, *(p for p in parsed if p is not None)], made)
    return index(hour, complete) if complete is not None else None


def _fold_session_hours(
    records: Iterable[dict[str, Any]], hours: list[int], made: str, price_of: PriceOf
) -> tuple[dict[int, HourSessions], list[tuple[str, BaseModel]]]:
    folded = fold_sessions(records, hours, made, price_of, cost_nano_usd)
    writes: list[tuple[str, BaseModel]] = [
        (part_key(p.hour, p.part), p) for parts in folded.values() for p in parts
    ]
    return {hour: index(hour, parts) for hour, parts in folded.items()}, writes
