"""Every runtime's view of the cluster's unfinished runs, and the reaper of lost ones.

Each runtime watches `run.>` in KV `runs` and keeps the non-terminal records in memory
(which runs a session has, for `chat.abort`). Once a second it looks for leases that
expired — the runtime holding them died or lost NATS — and ends those runs as `error`.
Several runtimes may see the same expiry; the compare-and-set on the record's revision
lets exactly one of them finish it and announce it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.jsretry import last_stall
from aisopod_runtime.kvview import is_value
from aisopod_runtime.runs import LEASE_REFRESH_S, LEASE_S, is_terminal, lease_expired, now_ms

log = logging.getLogger("aisopod.runtime.board")

REAP_INTERVAL_S = 1.0
REAP_GRACE_MS = 500
"""Clock skew and refresh jitter allowance before a lease counts as expired."""

Reaper = Callable[[dict[str, Any], int], Awaitable[None]]


@dataclass(slots=True)
class ActiveRun:
    record: dict[str, Any]
    revision: int


class RunBoard:
    def __init__(self, kv: KeyValue, reap: Reaper, nc: NATS | None = None) -> None:
        self.kv = kv
        self._reap = reap
        self._nc = nc
        self._reconnects = 0
        self._quiet_until = 0.0
        self.active: dict[str, ActiveRun] = {}
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name="run-board-watch"),
            asyncio.create_task(self._reaper(), name="run-board-reaper"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 10.0)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)

    def runs_of(self, session_key: str) -> list[str]:
        return [
            run_id
            for run_id, run in self.active.items()
            if run.record.get("sessionKey") == session_key
        ]

    async def _watch(self) -> None:
        while not self._stopping:
            watcher = None
            try:
                watcher = await self.kv.watch("run.>")
                async for entry in watcher:
                    if entry is None:
                        self._ready.set()
                        continue
                    run_id = entry.key.removeprefix("run.")
                    if not is_value(entry):
                        self.active.pop(run_id, None)
                        continue
                    record = codec.loads(entry.value)
                    if is_terminal(record):
                        self.active.pop(run_id, None)
                    else:
                        self.active[run_id] = ActiveRun(record, entry.revision or 0)
            except asyncio.CancelledError:
                raise
            except Exception:  # NATS restart: rebuild the view from scratch
                log.warning("run watch interrupted; restarting", exc_info=True)
                self.active.clear()
                await asyncio.sleep(0.5)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()

    def _just_reconnected(self) -> bool:
        """After a NATS outage every lease looks expired, the live ones too: give their
        owners a full lease to refresh before judging them. The same after a JetStream
        leader election stalled our own calls (jsretry.py): it stalled their refreshes."""
        reconnects = int(self._nc.stats.get("reconnects", 0)) if self._nc is not None else 0
        if reconnects != self._reconnects:
            self._reconnects = reconnects
            self._quiet_until = time.monotonic() + LEASE_S + LEASE_REFRESH_S
        stalled = last_stall()
        if stalled:
            self._quiet_until = max(self._quiet_until, stalled + LEASE_S + LEASE_REFRESH_S)
        return time.monotonic() < self._quiet_until

    async def _reaper(self) -> None:
        while not self._stopping:
            await asyncio.sleep(REAP_INTERVAL_S)
            if self._just_reconnected():
                continue
            deadline = now_ms() - REAP_GRACE_MS
            for run in list(self.active.values()):
                if lease_expired(run.record, deadline):
                    try:
                        await self._reap(run.record, run.revision)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.warning("reaping run %s failed", run.record.get("runId"), exc_info=True)
