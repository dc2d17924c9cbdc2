"""`chat.*`, `agent` and `agent.wait`: starting runs, aborting them, reading transcripts.

`chat.send` answers at once: `{runId, status: "started"}` when the run began, or
`{runId, status: "in_flight"}` when the session already had a run in progress — the new
message is then queued behind it (one run per session at a time) and its run starts
when the session is free. A retry with the same `idempotencyKey` within 5 minutes gets
the first answer back and starts nothing (the RPC wrapper's dedupe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from pydantic import ValidationError

from aisopod.catalogue.agents import AgentParams, AgentRunResult, AgentWaitParams, AgentWaitResult
from aisopod.catalogue.chat import (
    ChatAbortParams,
    ChatAbortResult,
    ChatHistoryParams,
    ChatHistoryResult,
    ChatInjectParams,
    ChatInjectResult,
    ChatMessage,
    ChatSendParams,
    ChatSendResult,
)
from aisopod.errors import InvalidParams, NotFound
from aisopod.rpc import CallContext, ClaimsFirst, Handler, Replayable
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.compaction import compacted_view
from aisopod_runtime.emitter import RunEmitter
from aisopod_runtime.runs import is_terminal
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.transcripts import cap_bytes, new_message

# How far past its timeout agent.wait may go on reading (edges wait nats_retry_s + 2 s).
WAIT_STALL_S = 10.0

log = logging.getLogger("aisopod.runtime.chat")

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
DEFAULT_WAIT_MS = 30_000
WAIT_MARGIN_S = 5.0
"""`wait` outlives the run's own timeout by this much, so the run's verdict is what returns."""


def chat_handlers(parts: RuntimeService) -> dict[str, Handler]:
    runner = parts.require_runner()

    def canonical(key: str) -> tuple[str, str]:
        return parse_session_key(key, parts.agents.default_id)

    async def send(params: ChatSendParams, ctx: CallContext) -> ChatSendResult:
        attachments = [a.wire() for a in params.attachments] if params.attachments else None
        submitted = await runner.submit(
            params.session_key,
            params.message,
            ctx.principal,
            timeout_ms=params.timeout_ms,
            attachments=attachments,
            source="chat",
            run_id=client_run_id(params.idempotency_key, ctx),
            claimed=ctx.claimed,
        )
        status = "in_flight" if submitted.queued else "started"
        return ChatSendResult(run_id=submitted.run_id, status=status)

    async def resend(first: Any, params: ChatSendParams, ctx: CallContext) -> ChatSendResult:
        """A retry with the same idempotency key: the first run, as it is now (a run whose
        runtime died ends `error` once its lease expires; the retry then says so)."""
        answer = ChatSendResult.model_validate(first)
        record = await runner.store.get(answer.run_id)
        if record is None:
            return answer  # the record is gone (runs outlive idempotency keys)
        if is_terminal(record):
            error = record.get("error")
            return ChatSendResult(
                run_id=answer.run_id,
                status=record["status"],
                error=error if isinstance(error, str) else None,
            )
        # A run's record reads `queued` until the runner picks it up, even when the first
        # answer said `started`: only a run that waited behind another stays `in_flight`.
        waiting = answer.status == "in_flight" and record.get("status") == "queued"
        status = "in_flight" if waiting else "started"
        return ChatSendResult(run_id=answer.run_id, status=status)

    async def abort(params: ChatAbortParams, ctx: CallContext) -> ChatAbortResult:
        session_key, _ = canonical(params.session_key)
        ids = await runner.abort(session_key, params.run_id)
        return ChatAbortResult(aborted=bool(ids), run_ids=ids)

    async def history(params: ChatHistoryParams, ctx: CallContext) -> ChatHistoryResult:
        session_key, _ = canonical(params.session_key)
        messages = await history_view(parts, session_key, params.limit)
        return ChatHistoryResult(session_key=session_key, messages=messages)

    async def inject(params: ChatInjectParams, ctx: CallContext) -> ChatInjectResult:
        session_key, agent_id = canonical(params.session_key)
        await parts.agents.get(agent_id)
        message = new_message("assistant", params.message, label=params.label, injected=True)
        await parts.sessions.ensure(session_key, agent_id)
        await parts.transcripts.append(session_key, message)
        await parts.sessions.touch(session_key, agent_id, params.message)
        # Broadcast as a one-event "run" so chat views render it like any answer.
        emitter = RunEmitter(parts.host.bus, f"inject-{message['id']}", session_key, None)
        await emitter.final(params.message, None, message["id"])
        return ChatInjectResult(message_id=message["id"])

    async def agent(params: AgentParams, ctx: CallContext) -> AgentRunResult:
        agent_id = params.agent_id or parts.agents.default_id
        submitted = await runner.submit(
            params.session_key or "main",
            params.message,
            ctx.principal,
            agent_id=agent_id,
            timeout_ms=params.timeout_ms,
            source="agent",
            run_id=client_run_id(params.idempotency_key, ctx),
            claimed=ctx.claimed,
        )
        if not params.wait:
            return AgentRunResult(run_id=submitted.run_id, status="accepted")
        timeout_ms = params.timeout_ms or parts.config.models.agents.timeout_ms
        record = await runner.wait(submitted.run_id, timeout_ms / 1000 + WAIT_MARGIN_S)
        return AgentRunResult(
            run_id=submitted.run_id,
            status=record["status"] if record is not None and is_terminal(record) else "timeout",
            result=record.get("result") if record else None,
            error=record.get("error") if record else None,
        )

    async def wait(params: AgentWaitParams, ctx: CallContext) -> AgentWaitResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (params.timeout_ms or DEFAULT_WAIT_MS) / 1000
        record: dict[str, Any] | None = None
        # One budget for the look-up and the wait: reads slowed by a NATS election must
        # not push the answer past what the caller waits (its timeout plus the edge's
        # margin): past it, the answer is `timeout` and the caller waits again.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline + WAIT_STALL_S):
                if await runner.store.get(params.run_id) is None:
                    raise NotFound(f"no run {params.run_id!r}", code="RUN_NOT_FOUND")
                record = await runner.wait(params.run_id, max(deadline - loop.time(), 0.0))
        # Absent, not null, when unknown (`endedAt` of a run still going).
        return wait_result(params.run_id, record)

    return {
        # Both claim their idempotency key with the run's reads (runner.submit).
        "chat.send": Replayable(ClaimsFirst(send), resend),
        "chat.abort": abort,
        "chat.history": history,
        "chat.inject": inject,
        "agent": ClaimsFirst(agent),
        "agent.wait": wait,
    }


def client_run_id(idempotency_key: str | None, ctx: CallContext) -> str | None:
    """The run id an OpenClaw client gets: its own idempotencyKey (its Control UI matches
    the run's events and the history's `<runId>:user` by it; translating ids in the codec
    races with the run's first events). Our own clients keep server-made ids."""
    principal = ctx.principal
    if principal is None or principal.wire != "openclaw" or not idempotency_key:
        return None
    if not RUN_ID.match(idempotency_key):
        raise InvalidParams(
            "idempotencyKey must be 1-128 letters, digits, '-' or '_' (it is the run id)",
            code="BAD_IDEMPOTENCY_KEY",
        )
    return idempotency_key


async def history_view(parts: RuntimeService, session_key: str, limit: int) -> list[ChatMessage]:
    """The newest `limit` messages as `chat.history` shows them: after a compaction its
    summary, then what follows; at most `HISTORY_MAX_BYTES` of them."""
    read = await parts.transcripts.read(session_key, limit)
    return _valid(cap_bytes(compacted_view(read)))


def _valid(messages: list[dict[str, Any]]) -> list[ChatMessage]:
    """Messages as the catalogue shapes them; one malformed record must not hide the rest."""
    out = []
    for message in messages:
        try:
            out.append(ChatMessage.model_validate(message))
        except ValidationError:
            log.warning("skipping a malformed transcript message %s", message.get("id"))
    return out


def wait_result(run_id: str, record: dict[str, Any] | None) -> AgentWaitResult:
    if record is None or not is_terminal(record):
        started = record.get("startedAt") if record else None
        return AgentWaitResult(run_id=run_id, status="timeout", started_at=started)
    return AgentWaitResult(
        run_id=run_id,
        status=record["status"],
        started_at=record.get("startedAt"),
        ended_at=record.get("endedAt"),
        error=record.get("error"),
    )
