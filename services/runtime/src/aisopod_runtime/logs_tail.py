"""logs.tail: read the LOGS stream (`<prefix>.logs.<service>`, JSON records of aisopod.logs).

The cursor is a stream sequence: pass back the returned `cursor` to get the lines after
it. Without a cursor the call returns the newest lines (with filters, the newest matching
lines among the last `limit × 10` records, at most 50,000). A cursor that fell out of the
stream (retention) restarts at the oldest record held, with `reset: true`. `level` is a
minimum: `warning` returns warnings, errors and critical records.
"""

from __future__ import annotations

import contextlib
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from aisopod import codec
from aisopod.bus import Bus
from aisopod.catalogue.system import LogsTailParams, LogsTailResult
from aisopod.jsread import fetch
from aisopod.state import stream_name

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_CORE = ("ts", "level", "service", "msg")
SCAN_FACTOR = 10
MAX_SCAN = 50_000
BATCH = 500


def to_line(seq: int, data: bytes) -> dict[str, Any] | None:
    try:
        record = codec.loads(data)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    line = {
        "seq": seq,
        "ts": int(record.get("ts") or 0),
        "service": str(record.get("service") or ""),
        "level": str(record.get("level") or "info").lower(),
        "message": str(record.get("msg") or ""),
    }
    for key in ("instance", "logger", "exc"):
        if key in record:
            line[key] = record[key]
    extra = {k: v for k, v in record.items() if k not in (*_CORE, "instance", "logger", "exc")}
    if extra:
        line["fields"] = extra
    return line


def passes(line: dict[str, Any], min_level: int) -> bool:
    return LEVELS.get(line["level"], 20) >= min_level


class LogsTail:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = stream_name(bus.subjects.prefix, "LOGS")

    async def tail(self, params: LogsTailParams, ctx: Any) -> LogsTailResult:
        js = self.bus.js
        state = (await js.stream_info(self.stream)).state
        first, last = state.first_seq, state.last_seq
        filtered = params.service is not None or params.level is not None
        reset = False
        if params.cursor is None:
            window = min(params.limit * SCAN_FACTOR, MAX_SCAN) if filtered else params.limit
            start = max(first, last - window + 1, 1)
        else:
            start = params.cursor + 1
            if params.cursor > last or (start < first and last >= first):
                reset, start = True, max(first, 1)
        result: dict[str, Any] = {"cursor": max(last, params.cursor or 0), "lines": []}
        if reset:
            result["reset"] = True
            result["cursor"] = last
        if last == 0 or start > last:
            return LogsTailResult.model_validate(result)
        subject = (
            self.bus.subjects.logs(params.service.value)
            if params.service is not None
            else f"{self.bus.subjects.prefix}.logs.>"
        )
        min_level = LEVELS[params.level] if params.level else 0
        lines, scanned_to = await self._read(subject, start, last, params, min_level)
        if params.cursor is None:
            lines = lines[-params.limit :]
        result["lines"] = lines
        result["cursor"] = scanned_to
        return LogsTailResult.model_validate(result)

    async def _read(
        self, subject: str, start: int, last: int, params: LogsTailParams, min_level: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching lines from `start` up to `last`; stops early (cursor mode) at `limit`.
        Returns them and the last sequence examined."""
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        )
        sub = await self.bus.js.pull_subscribe(subject, stream=self.stream, config=config)
        lines: list[dict[str, Any]] = []
        scanned_to = last
        consumer: str | None = None
        try:
            info = await sub.consumer_info()
            consumer = info.name
            pending = info.num_pending or 0
            follow = params.cursor is not None
            while pending > 0:
                msgs = await fetch(sub, min(pending, BATCH), timeout=2.0)
                pending -= len(msgs)
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > last:
                        return lines, scanned_to
                    line = to_line(seq, msg.data)
                    if line is None or not passes(line, min_level):
                        continue
                    lines.append(line)
                    if follow and len(lines) >= params.limit:
                        return lines, seq
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await self.bus.js.delete_consumer(self.stream, consumer)
        return lines, scanned_to
