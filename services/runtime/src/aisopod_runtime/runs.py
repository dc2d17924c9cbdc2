"""Run records in KV `runs` (key `run.<runId>`), each one also the lease of its run.

A record is `{runId, sessionKey, agentId, status, instance, pid, leaseUntil, seq,
createdAt, startedAt?, endedAt?, error?, result?}`; `status` goes queued → running → one of
ok | error | aborted | timeout (a run whose lane was free is created `running`: runner.py),
and a terminal record is never changed again (every write is compare-and-set on the
revision). The runtime holding a run refreshes `leaseUntil`
every `LEASE_REFRESH_S`; `seq` is the last event seq it published (see RunBoard).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Literal

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.compat.natspy import kv_bucket, kv_jetstream
from aisopod_runtime.kvview import get_json, wait_for_value

RunState = Literal["queued", "running", "ok", "error", "aborted", "timeout"]
TERMINAL: frozenset[str] = frozenset({"ok", "error", "aborted", "timeout"})

LEASE_S = 6.0
"""How long a run survives its runtime's silence; a dead runtime's runs end this late."""
LEASE_REFRESH_S = 2.0


def now_ms() -> int:
    return int(time.time() * 1000)


def run_key(run_id: str) -> str:
    return f"run.{run_id}"


def is_terminal(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("status") in TERMINAL


def lease_expired(record: dict[str, Any], at_ms: int | None = None) -> bool:
    return not is_terminal(record) and int(record.get("leaseUntil", 0)) < (at_ms or now_ms())


class RunStore:
    def __init__(self, kv: KeyValue, instance: str) -> None:
        self.kv = kv
        self.instance = instance
        # The last version this instance wrote of each of its unfinished runs: a change
        # first tries it (one round trip) and reads the record only when it is stale.
        self._known: dict[str, tuple[dict[str, Any], int]] = {}

    async def keep_for(self, seconds: float) -> None:
        """Give the bucket its retention: records of finished runs are otherwise never
        removed (a bucket made before the retention existed is brought in line)."""
        stream = f"KV_{kv_bucket(self.kv)}"  # the stream name is NATS' own KV scheme
        js = kv_jetstream(self.kv)
        info = await js.stream_info(stream)
        if info.config.max_age != seconds:
            info.config.max_age = seconds
            await js.update_stream(info.config)

    def new_record(
        self, run_id: str, session_key: str, agent_id: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "runId": run_id,
            "sessionKey": session_key,
            "agentId": agent_id,
            "status": "queued",
            "instance": self.instance,
            "pid": os.getpid(),
            "leaseUntil": now_ms() + int(LEASE_S * 1000),
            "seq": 0,
            "createdAt": now_ms(),
            **{k: v for k, v in extra.items() if v is not None},
        }

    async def create(self, record: dict[str, Any]) -> int:
        revision = await self.kv.create(run_key(record["runId"]), codec.dumps(record))
        self._known[record["runId"]] = (dict(record), revision)
        return revision

    async def get(self, run_id: str) -> dict[str, Any] | None:
        found = await get_json(self.kv, run_key(run_id))
        return found[0] if found else None

    async def change(
        self,
        run_id: str,
        mutate: Callable[[dict[str, Any]], bool],
        *,
        revision: int | None = None,
    ) -> dict[str, Any] | None:
        """Apply `mutate` (returns False to give up) unless the run is terminal.

        With `revision`, only that exact version is changed (one attempt: the caller
        acts on what it saw, e.g. an expired lease). Returns the new record, or None when
        nothing was written.
        """
        known = self._known.pop(run_id, None) if revision is None else None
        for _ in range(1 if revision is not None else 8):
            if known is not None:
                found: tuple[dict[str, Any], int] | None = (dict(known[0]), known[1])
                known = None
            else:
                found = await get_json(self.kv, run_key(run_id))
            if found is None or is_terminal(found[0]):
                return None
            record, current = found
            if revision is not None and current != revision:
                return None
            if not mutate(record):
                return None
            try:
                written = await self.kv.update(run_key(run_id), codec.dumps(record), last=current)
            except KeyWrongLastSequenceError:
                continue
            if not is_terminal(record) and record.get("instance") == self.instance:
                self._known[run_id] = (dict(record), written)
            return record
        return None

    def forget(self, run_id: str) -> None:
        self._known.pop(run_id, None)

    async def finish(
        self, run_id: str, status: str, *, revision: int | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Make the run terminal; None when it already was (someone else finished it)."""

        def mutate(record: dict[str, Any]) -> bool:
            _finished(record, status, fields)
            return True

        return await self.change(run_id, mutate, revision=revision)

    def finished_draft(self, run_id: str, status: str, **fields: Any) -> dict[str, Any] | None:
        """The terminal record `finish` with these arguments is about to write, from the
        last version this instance wrote (None when it has none at hand: a change of it
        is in flight, or another writer's version is newer)."""
        known = self._known.get(run_id)
        if known is None:
            return None
        record = dict(known[0])
        _finished(record, status, fields)
        return record

    async def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """The record once terminal, or as it is when `timeout` ends; None if unknown."""
        return await wait_for_value(self.kv, run_key(run_id), is_terminal, timeout)


def _finished(record: dict[str, Any], status: str, fields: dict[str, Any]) -> None:
    record.update(status=status, endedAt=now_ms())
    record.update({k: v for k, v in fields.items() if v is not None})
