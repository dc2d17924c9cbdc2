"""`sessions.*` methods: list, send (agent-to-agent), patch, reset, delete.

`sessions.send` starts a run in the target session like `chat.send` (refused with
FORBIDDEN when the session's `sendPolicy` is `deny`); with `wait` it answers
`{runId, status, reply}` once the run ended. `reset` clears the transcript and keeps the
entry; `delete` removes both. Both first abort the session's unfinished runs.
"""

from __future__ import annotations

from typing import Any

from aisopod.catalogue.fields import OkResult
from aisopod.catalogue.sessions import (
    SessionKeyParams,
    SessionsListParams,
    SessionsListResult,
    SessionsPatchParams,
    SessionsPatchResult,
    SessionsSendParams,
    SessionsSendResult,
)
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.chat import WAIT_MARGIN_S
from aisopod_runtime.runs import is_terminal
from aisopod_runtime.service import RuntimeService


def session_handlers(parts: RuntimeService) -> dict[str, Handler]:
    runner = parts.require_runner()

    def canonical(key: str) -> tuple[str, str]:
        return parse_session_key(key, parts.agents.default_id)

    async def list_(params: SessionsListParams, ctx: CallContext) -> SessionsListResult:
        return SessionsListResult(sessions=await parts.sessions.list(params))

    async def send(params: SessionsSendParams, ctx: CallContext) -> SessionsSendResult:
        submitted = await runner.submit(
            params.session_key,
            params.message,
            ctx.principal,
            timeout_ms=params.timeout_ms,
            source="sessions_send",
        )
        if not params.wait:
            return SessionsSendResult(run_id=submitted.run_id)
        timeout_ms = params.timeout_ms or parts.config.models.agents.timeout_ms
        record = await runner.wait(submitted.run_id, timeout_ms / 1000 + WAIT_MARGIN_S)
        if not is_terminal(record):
            return SessionsSendResult(run_id=submitted.run_id, status="timeout")
        assert record is not None
        result = record.get("result") or {}
        return SessionsSendResult(
            run_id=submitted.run_id, status=record["status"], reply=result.get("text")
        )

    async def patch(params: SessionsPatchParams, ctx: CallContext) -> SessionsPatchResult:
        key, agent_id = canonical(params.key)
        await parts.agents.get(agent_id)
        if "model" in params.model_fields_set:
            parts.agents.check_model(params.model)
        entry = await parts.sessions.patch(params, agent_id, key)
        return SessionsPatchResult(key=key, entry=entry)

    async def reset(params: SessionKeyParams, ctx: CallContext) -> OkResult:
        key, agent_id = canonical(params.key)
        await parts.sessions.require(key)
        await runner.abort(key)
        await parts.transcripts.purge(key)
        await parts.sessions.change(key, agent_id, {"lastMessage": None})
        return OkResult()

    async def delete(params: SessionKeyParams, ctx: CallContext) -> OkResult:
        key, _ = canonical(params.key)
        await parts.sessions.require(key)
        await runner.abort(key)
        await parts.transcripts.purge(key)
        await parts.sessions.delete(key)
        return OkResult()

    handlers: dict[str, Any] = {
        "sessions.list": list_,
        "sessions.send": send,
        "sessions.patch": patch,
        "sessions.reset": reset,
        "sessions.delete": delete,
    }
    return handlers
