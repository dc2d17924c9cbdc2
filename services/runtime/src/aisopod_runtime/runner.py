"""Agent runs on this replica: accept, queue per session, execute, abort, keep the lease.

- `submit` validates the target (session key, agent, model), writes the run record
  (`running` when the lane was free, else `queued`) and starts a task. The run owns its
  session's lane before it does anything (lanes.py): when another run holds it, this one
  waits and `submit` reports it queued — `chat.send` answers `status: "in_flight"` then.
- The task appends the user message, runs the turn (turn.py) under the run's timeout,
  and concludes: events (`final`, `aborted` or `error`), partial text kept in the
  transcript, the record made terminal, the lane freed, the session touched.
- Every `LEASE_REFRESH_S` the lease of each local run is renewed; a run whose record was
  ended by another runtime (its lease had expired) stops without writing anything.
- `chat.abort` may arrive on any replica: `abort` publishes the run ids on
  `<prefix>.control.run.abort`, which every runtime subscribes to, and the holder cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from aisopod import codec
from aisopod.catalogue.agents import Agent
from aisopod.catalogue.sessions import SessionEntry
from aisopod.errors import AisopodError, Conflict, Forbidden, InvalidParams, Unavailable
from aisopod.principal import Principal
from aisopod.sessionkey import parse_session_key
from aisopod.sessiontitle import session_title
from aisopod.state import bucket_ttl
from aisopod_runtime.board import RunBoard
from aisopod_runtime.context import user_content
from aisopod_runtime.emitter import RunEmitter
from aisopod_runtime.lanes import Lanes, holder_alive
from aisopod_runtime.providers import ProviderError, ProviderUnavailable
from aisopod_runtime.runs import (
    LEASE_REFRESH_S,
    LEASE_S,
    RunStore,
    is_terminal,
    now_ms,
    run_key,
)
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.sessions import Seen
from aisopod_runtime.transcripts import new_message
from aisopod_runtime.turn import Outcome, Turn, TurnError

log = logging.getLogger("aisopod.runtime.runner")
T = TypeVar("T")
RUNS_RETENTION_S = bucket_ttl("runs")

ABORT_WAIT_S = 5.0
CANCEL_RETRY_S = 0.2
LANE_RECHECK_AFTER_S = 1.0
"""Submit writes slower than this (a leader election) read the lane again before the run
counts it as taken: the lane's lease may have run out while the record was not stored."""
REAPED_SEQ_GAP = 10_000
"""A reaper's events continue after the last checkpointed seq plus this gap, so they sort
after anything the lost runtime published since its last lease refresh."""


@dataclass(slots=True)
class Submitted:
    run_id: str
    session_key: str
    queued: bool


@dataclass(slots=True)
class LocalRun:
    run_id: str
    session_key: str
    agent_id: str
    emitter: RunEmitter
    task: asyncio.Task[None] | None = None
    reason: str | None = None
    """Why the task was cancelled: abort | timeout | shutdown | lost."""
    concluding: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    told: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once this runtime's waiters may be answered: the run's end is stored (events,
    transcript, session, lane) and `record` holds the terminal record being written."""
    session: Seen | None = None
    """The session entry as the run found it: its touch at the end tries that version first."""
    record: dict[str, Any] | None = None
    """The terminal record this runtime is writing (from `told` on), then wrote."""
    new_session: bool = False
    system_events: bool = False
    """System events may wait for this session: the run takes them once it holds the lane."""
    prompt_files: list[tuple[str, str]] | None = None
    """The agent's files as submit read them, for a run that started at once (None: the
    turn reads them)."""
    title: str | None = None
    """The session's title from this run's message (`aisopod.sessiontitle`), while the
    session has none: written with the touch at the end when the run turns out to carry
    the session's first user message (a session `chat.inject` created has none yet)."""


class RunManager:
    def __init__(self, parts: RuntimeService, store: RunStore) -> None:
        self.parts = parts
        self.bus = parts.host.bus
        self.store = store
        self.lanes = Lanes(store.kv, self._owner_alive)
        self.board = RunBoard(store.kv, self._reap, self.bus.nc)
        self.local: dict[str, LocalRun] = {}
        # Runs submitted here whose lane is still being taken (not yet in `local`).
        self.starting: set[str] = set()
        self._sub: Subscription | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._watchdogs: set[asyncio.Future[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.store.keep_for(RUNS_RETENTION_S)
        except Exception:  # retention is housekeeping: never a reason not to start
            log.warning("could not set the retention of KV runs", exc_info=True)
        await self.board.start()
        self._sub = await self.bus.nc.subscribe(
            self.bus.subjects.control("run.abort"), cb=self._on_abort
        )
        self._refresher = asyncio.create_task(self._refresh_leases(), name="run-leases")

    async def drain(self, timeout: float) -> None:
        """Let local runs finish (bounded), those that start meanwhile too: a draining
        runtime still answers its NATS requests (waits, reads, and new runs the edges send
        until it stops taking requests), and `stop` ends whatever still runs as an error."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.local:
                    await asyncio.gather(*(run.done.wait() for run in list(self.local.values())))

    async def stop(self) -> None:
        """End whatever still runs as `error` (the lane is freed, nobody waits a lease)."""
        for run in list(self.local.values()):
            self._cancel(run, "shutdown")
        tasks = [run.task for run in self.local.values() if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._refresher is not None:
            self._refresher.cancel()
        await self.board.stop()

    # -- submit -------------------------------------------------------------------------
    async def submit(
        self,
        key: str,
        message: str,
        principal: Principal,
        *,
        agent_id: str | None = None,
        timeout_ms: int | None = None,
        attachments: list[dict[str, Any]] | None = None,
        source: str = "chat",
        origin_session: str | None = None,
        run_id: str | None = None,
        claimed: Callable[[], Awaitable[None]] | None = None,
    ) -> Submitted:
        """`claimed`: the call's idempotency key claim (`CallContext.claimed`), awaited
        with the reads, before the first write."""
        parts = self.parts
        session_key, key_agent = parse_session_key(key, agent_id or parts.agents.default_id)
        if agent_id and key_agent != agent_id:
            raise InvalidParams(
                f"session {session_key!r} belongs to agent {key_agent!r}, not {agent_id!r}",
                code="AGENT_MISMATCH",
            )
        if origin_session == session_key:
            raise InvalidParams("a session cannot send to itself", code="SELF_SEND")
        # The reads a run needs, at once: one round trip instead of several (the budget
        # check reads its counters only when a budget applies; a client's run id must
        # name no run yet), and with them the idempotency key's claim: a repeat stops
        # here, having written nothing.
        reads = asyncio.gather(
            claimed() if claimed is not None else _none(),
            parts.agents.get(key_agent),
            parts.sessions.lookup(session_key),
            self.lanes.peek(session_key),
            parts.inbox.waiting(session_key),
            parts.usage.admit(key_agent, principal),
            self.store.get(run_id) if run_id is not None else _none(),
        )
        # The agent's files for the system prompt, read with the rest instead of in a
        # round trip of its own when the turn starts (used only by a run that starts at
        # once: a queued one reads them again when its turn comes).
        (_, agent, seen, lane, waiting, _, existing), prompt_files = await asyncio.gather(
            reads, parts.require_agent_files().contents(key_agent)
        )
        entry = seen.entry if seen is not None else None
        model_ref = self._admit(entry, agent, source)
        if existing is not None:
            raise Conflict(f"a run {run_id!r} exists already", code="RUN_EXISTS")
        run_id = run_id or uuid.uuid4().hex
        # A lane that is free as read (absent, or `{}`) is ours unless another submit takes
        # it in the same instant: the record is then created `running` at once, which
        # saves the separate `queued` → `running` write of every such run. The rare loser
        # corrects it to `queued` before answering (below).
        free = lane is None or not lane[0].get("runId")
        started = now_ms() if free else None
        record = self.store.new_record(
            run_id,
            session_key,
            agent.id,
            source=source,
            model=model_ref,
            principal=principal.id,
            originConn=principal.conn_id,
            timeoutMs=timeout_ms or parts.config.models.agents.timeout_ms,
            status="running" if free else None,
            startedAt=started,
        )
        created = seen is None
        # One round trip for the record, the lane and (for a new session) its entry. The
        # lane may be stored before the record (a write retried through a leader election
        # lands late): its own lease tells other runtimes the run is alive meanwhile
        # (lanes.py). Ours from here on: our reaper must not judge it while writes are slow.
        self.starting.add(run_id)
        acquired = False
        try:
            writes: list[Awaitable[Any]] = [
                self.store.create(record),
                self.lanes.try_acquire(
                    session_key, run_id, lane, lease_until=int(record["leaseUntil"])
                ),
            ]
            title = session_title(message) if entry is None or entry.title is None else None
            if created:
                writes.append(parts.sessions.create(session_key, agent.id, title))
            sent = time.monotonic()
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            acquired = outcomes[1] is True
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            if created:
                seen = outcomes[2]
                assert isinstance(seen, Seen)
                if seen.raced:  # created by another writer meanwhile: judge by its entry
                    created = False
                    model_ref = await self._readmit(record, seen.entry, agent, source)
            if acquired and time.monotonic() - sent > LANE_RECHECK_AFTER_S:
                # Writes this slow (an election) may have let the lane's lease run out
                # before the record was stored, and another run take the lane over.
                acquired = await self.lanes.holds(session_key, run_id)
            if free and not acquired:  # another run took the lane first: this one waits
                await self.store.change(run_id, _requeued)
                record.update(status="queued")
                record.pop("startedAt", None)
        except BaseException:
            if acquired:
                with contextlib.suppress(Exception):
                    await self.lanes.release(session_key, run_id)
            raise
        finally:
            self.starting.discard(run_id)
        run = LocalRun(
            run_id,
            session_key,
            agent.id,
            RunEmitter(self.bus, run_id, session_key, principal.conn_id),
            session=seen,
            # A session this run created, and whose lane it took at once, has no history
            # yet: nothing to read.
            new_session=created and acquired,
            # Queued behind another run, events may arrive (or be taken) meanwhile: look again.
            system_events=waiting > 0 or not acquired,
            prompt_files=prompt_files if acquired else None,
            # A session this run created has its title already (unless another writer
            # created it first: then, as for any existing session, the history decides).
            title=None if created else title,
        )
        self.local[run_id] = run
        run.task = asyncio.create_task(
            self._execute(run, agent, model_ref, message, attachments, principal, record, acquired),
            name=f"run-{run_id}",
        )
        return Submitted(run_id, session_key, queued=not acquired)

    def _admit(self, entry: SessionEntry | None, agent: Agent, source: str) -> str:
        """The model a run of `agent` in this session uses, or why it cannot run."""
        if source == "sessions_send" and entry is not None and entry.send_policy == "deny":
            raise Forbidden(f"session {entry.key!r} accepts no messages", code="SEND_DENIED")
        model_ref = (entry.model if entry else None) or agent.model
        model_ref = model_ref or self.parts.config.models.agents.model
        try:
            self.parts.providers.resolve(model_ref)
        except ProviderUnavailable as exc:
            # Configured but unusable: the operator's to fix, so not the caller's params.
            raise Unavailable(
                exc.message, code="PROVIDER_UNAVAILABLE", provider=exc.provider_id, retryable=False
            ) from None
        except ProviderError as exc:
            raise InvalidParams(exc.message, code="UNKNOWN_PROVIDER") from None
        return model_ref

    async def _readmit(
        self, record: dict[str, Any], entry: SessionEntry, agent: Agent, source: str
    ) -> str:
        """Check again against a session entry another writer created meanwhile."""
        run_id = record["runId"]
        try:
            model_ref = self._admit(entry, agent, source)
        except AisopodError:
            self.store.forget(run_id)
            with contextlib.suppress(Exception):
                await self.store.kv.delete(run_key(run_id))
            raise
        if model_ref != record["model"]:

            def remodel(stored: dict[str, Any]) -> bool:
                stored["model"] = model_ref
                return True

            record["model"] = model_ref
            await self.store.change(run_id, remodel)
        return model_ref

    # -- execution ----------------------------------------------------------------------
    async def _execute(
        self,
        run: LocalRun,
        agent: Agent,
        model_ref: str,
        message: str,
        attachments: list[dict[str, Any]] | None,
        principal: Principal,
        record: dict[str, Any],
        acquired: bool,
    ) -> None:
        status, error = "error", None
        outcome: Outcome | None = None
        turn: Turn | None = None
        timeout_ms = int(record["timeoutMs"])
        # The run's deadline cancels it like an abort does (see _cancel for why not
        # asyncio.timeout: a swallowed cancellation must not let the run go on).
        deadline = asyncio.get_running_loop().call_later(
            timeout_ms / 1000, self._cancel, run, "timeout"
        )
        # Written at the end only once the history shows no earlier user message.
        title, run.title = run.title, None
        try:
            if not acquired:
                await self.lanes.acquire(run.session_key, run.run_id)
            limit = self.parts.config.models.agents.history_limit
            events = await self._system_events(run)
            asked = new_message("user", user_content(message, attachments), runId=run.run_id)
            steps: list[Awaitable[Any]] = [
                self._history(run, limit + 1),
                self.parts.transcripts.append(run.session_key, asked),
            ]
            if record.get("status") == "running":  # created so (submit): nothing to write
                started = int(record["startedAt"])
            else:
                started = now_ms()
                steps.append(self.store.change(run.run_id, lambda r: _started(r, started)))
            # Together: the history is read while the question is written (read one more
            # and leave the question out: the read may or may not see it).
            history, *_ = await asyncio.gather(*steps)
            ours = {asked["id"], *(m["id"] for m in events)}
            history = [m for m in history if m.get("id") not in ours][-limit:]
            if not any(m.get("role") == "user" for m in history):
                run.title = title  # the session's first user message: its title
            # What the model is sent: compacted first when it nears the context window.
            history = await self.parts.require_compactor().before_turn(
                run.session_key, agent, model_ref, history, asked
            )
            run.emitter.post_lifecycle(
                "start", startedAt=started, model=model_ref, agentId=agent.id
            )
            turn = Turn(
                self.parts,
                run.emitter,
                run_id=run.run_id,
                session_key=run.session_key,
                agent=agent,
                model_ref=model_ref,
                principal=principal,
                history=[*history, *events, asked],
                prompt_files=run.prompt_files,
            )
            outcome = await turn.run()
            status = "ok"
        except TurnError as exc:
            error = str(exc)
        except asyncio.CancelledError:
            if run.reason == "lost":
                log.warning("run %s was ended elsewhere (lease lost)", run.run_id)
                deadline.cancel()
                self._forget(run)
                return
            if run.reason == "abort":
                status = "aborted"
            elif run.reason == "timeout":
                status, error = "timeout", f"the run timed out after {timeout_ms} ms"
            else:
                error = "the runtime stopped during the run"
        except AisopodError as exc:
            error = exc.message
        except Exception:
            log.exception("run %s failed", run.run_id)
            error = "internal error"
        deadline.cancel()
        run.concluding = True  # from here on no cancel reaches the task (see _cancel)
        charge = None
        if turn is not None:  # what the model calls used, whatever the outcome
            charge = self.parts.usage.charge(
                run_id=run.run_id,
                session_key=run.session_key,
                agent_id=agent.id,
                model_ref=model_ref,
                principal_id=principal.id,
                status=status,
                usage=turn.usage,
            )
        try:
            await self._conclude(run, status, error, outcome, turn.partial if turn else "", charge)
        finally:
            self._forget(run)

    async def _conclude(
        self,
        run: LocalRun,
        status: str,
        error: str | None,
        outcome: Outcome | None,
        partial: str,
        charge: Awaitable[None] | None = None,
    ) -> None:
        """Tell the run's end: events, session, lane, then the record.

        The events, the session touch and the lane release go together; the record is
        made terminal last, once they are done (`agent.wait` returns on it, and by then
        the session is free and current). Each step on its own: a failed event must not
        keep the lane. The answer is in the transcript before any of this (turn.py), and
        partial text kept before the events that end the run.
        """
        if outcome is None:
            # Every question gets its entry: the partial text, or none, with how the run
            # ended and why — history never holds a message that silently got no answer.
            # (An empty entry is not sent to models, context.to_openai.)
            kept = new_message(
                "assistant", partial, runId=run.run_id, stopReason=status, error=error
            )
            await self._step(run, self.parts.transcripts.append(run.session_key, kept))
        ended = now_ms()
        phase = "end" if status == "ok" else status
        # Both posted (numbered and queued) right here, in this order, then stored together
        # below: the run's final/aborted/error events come before its lifecycle end, in seq
        # and on the wire, whatever order the gathered steps happen to start in.
        emitter = run.emitter
        told: Awaitable[Any]
        if outcome is not None:
            told = emitter.post_final(outcome.text, outcome.usage.event(), outcome.message_id)
        elif status == "aborted":
            told = emitter.post_aborted(partial)
        else:
            told = emitter.post_error(error or status, partial)
        ended_event = emitter.post_lifecycle(phase, endedAt=ended, status=status, error=error)
        steps: list[Awaitable[Any]] = [told, ended_event]
        result = None
        if outcome is not None:
            result = {
                "text": outcome.text,
                "usage": outcome.usage.wire(),
                "messageId": outcome.message_id,
            }
        last = outcome.text if outcome is not None else partial
        sessions = self.parts.sessions
        steps.append(
            sessions.touch(run.session_key, run.agent_id, last or None, run.session, run.title)
        )
        steps.append(self.lanes.release(run.session_key, run.run_id))
        if charge is not None:
            steps.append(charge)
        await asyncio.gather(*(self._step(run, step) for step in steps))
        # The record's `endedAt` is the lifecycle end's.
        fields: dict[str, Any] = {
            "error": error,
            "result": result,
            "seq": run.emitter.seq,
            "endedAt": ended,
        }
        # This runtime's waiters (`agent` with `wait`, `agent.wait`, sessions_send) are
        # answered now, with the terminal record as it is being written, instead of one
        # round trip later once it is stored: what they are told is stored already
        # (events, transcript, session, lane), and the record's write is sent before
        # their answers (they run once this task yields). Other runtimes' waiters read
        # the stored record (KV). docs/runtime.md, "What a turn costs".
        run.record = self.store.finished_draft(run.run_id, status, **fields)
        if run.record is not None:
            run.told.set()
        finishing = self.store.finish(run.run_id, status, **fields)
        run.record = await self._step(run, finishing)

    async def _system_events(self, run: LocalRun) -> list[dict[str, Any]]:
        """The session's queued system events as the one message in front of the turn's."""
        if not run.system_events:
            return []
        transcripts = self.parts.transcripts
        message = await self.parts.inbox.deliver(
            run.session_key, lambda m: transcripts.append(run.session_key, m), run.run_id
        )
        return [message] if message is not None else []

    async def _history(self, run: LocalRun, limit: int) -> list[dict[str, Any]]:
        if run.new_session:
            return []
        return await self.parts.transcripts.read(run.session_key, limit)

    @staticmethod
    async def _step(run: LocalRun, step: Awaitable[T]) -> T | None:
        try:
            return await step
        except Exception:
            log.warning("concluding run %s: a step failed", run.run_id, exc_info=True)
            return None

    def _forget(self, run: LocalRun) -> None:
        self.local.pop(run.run_id, None)
        self.store.forget(run.run_id)
        run.done.set()
        run.told.set()

    def _cancel(self, run: LocalRun, reason: str) -> bool:
        """Stop a run's task, for `reason` (abort | timeout | shutdown | lost).

        Once per run, and never while it concludes (a cancel then would cut the
        conclusion short). Python 3.11's `asyncio.wait_for` — inside every NATS request —
        can swallow a cancellation that races with its result, so a watchdog repeats it
        until the task has taken it (`concluding`) or ended.
        """
        if run.reason is not None or run.concluding or run.task is None or run.task.done():
            return False
        run.reason = reason
        run.task.cancel()
        watchdog = asyncio.ensure_future(self._until_cancelled(run))
        self._watchdogs.add(watchdog)
        watchdog.add_done_callback(self._watchdogs.discard)
        return True

    async def _until_cancelled(self, run: LocalRun) -> None:
        while True:
            await asyncio.sleep(CANCEL_RETRY_S)
            if run.concluding or run.task is None or run.task.done():
                return
            log.info("run %s: cancellation was swallowed; repeating it", run.run_id)
            run.task.cancel()

    # -- abort --------------------------------------------------------------------------
    async def abort(self, session_key: str, run_id: str | None = None) -> list[str]:
        """Abort the session's unfinished runs (or just `run_id`) wherever they run."""
        if run_id is not None:
            record = await self.store.get(run_id)
            if record is None or is_terminal(record) or record.get("sessionKey") != session_key:
                return []
            ids = [run_id]
        else:
            ids = sorted(
                set(self.board.runs_of(session_key))
                | {r.run_id for r in self.local.values() if r.session_key == session_key}
            )
        if not ids:
            return []
        for rid in ids:
            if rid in self.local:
                self._cancel(self.local[rid], "abort")
        await self.bus.publish(self.bus.subjects.control("run.abort"), {"runIds": ids})
        await asyncio.gather(*(self.store.wait(rid, ABORT_WAIT_S) for rid in ids))
        return ids

    async def _on_abort(self, msg: Msg) -> None:
        try:
            ids = codec.loads(msg.data).get("runIds") or []
        except ValueError:
            return
        for rid in ids:
            run = self.local.get(str(rid))
            if run is not None:
                self._cancel(run, "abort")

    async def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """The run's record once terminal, or as it is when `timeout` ends."""
        run = self.local.get(run_id)
        if run is None:
            return await self.store.wait(run_id, timeout)
        with contextlib.suppress(TimeoutError):  # ours: no KV watch needed
            async with asyncio.timeout(timeout):
                await run.told.wait()
        if run.record is not None:
            return run.record  # the terminal record as this runtime writes or wrote it
        return await self.store.get(run_id)

    # -- leases -------------------------------------------------------------------------
    async def _refresh_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_REFRESH_S)
            for run in list(self.local.values()):
                try:
                    await self._refresh(run)
                except Exception:
                    log.warning("lease refresh of %s failed", run.run_id, exc_info=True)

    async def _refresh(self, run: LocalRun) -> None:
        until = now_ms() + int(LEASE_S * 1000)
        instance = self.store.instance

        def renew(record: dict[str, Any]) -> bool:
            if record.get("instance") != instance:
                return False
            record.update(leaseUntil=until, seq=run.emitter.seq)
            return True

        if await self.store.change(run.run_id, renew) is None and not run.concluding:
            record = await self.store.get(run.run_id)
            if record is None or is_terminal(record) or record.get("instance") != instance:
                self._cancel(run, "lost")

    async def _owner_alive(self, run_id: str, lane: dict[str, Any]) -> bool:
        if run_id in self.local or run_id in self.starting:
            return True
        return holder_alive(await self.store.get(run_id), lane)

    async def _reap(self, record: dict[str, Any], revision: int) -> None:
        """End a run whose runtime went silent (called by the board for expired leases)."""
        run_id = str(record["runId"])
        if run_id in self.local or run_id in self.starting:
            return  # ours: our own refresher decides
        message = "the runtime running this run stopped (its lease expired)"
        finished = await self.store.finish(run_id, "error", revision=revision, error=message)
        if finished is None:
            return  # refreshed meanwhile, or another runtime reaped it first
        log.warning("reaped run %s of instance %s", run_id, record.get("instance"))
        emitter = RunEmitter(self.bus, run_id, record["sessionKey"], record.get("originConn"))
        emitter.start_at(int(record.get("seq", 0)) + REAPED_SEQ_GAP)
        await emitter.error(message)
        await emitter.lifecycle("error", endedAt=finished["endedAt"], status="error", error=message)
        await self.lanes.release(record["sessionKey"], run_id)


async def _none() -> None:
    return None


def _requeued(record: dict[str, Any]) -> bool:
    if record.get("status") != "running":
        return False
    record["status"] = "queued"
    record.pop("startedAt", None)
    return True


def _started(record: dict[str, Any], at: int) -> bool:
    record.update(status="running", startedAt=at)
    return True
