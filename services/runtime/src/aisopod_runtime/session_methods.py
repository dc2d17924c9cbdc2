"""`sessions.*` methods: list, preview, resolve, send (agent-to-agent), patch, reset, delete.

`preview` reads the last messages of many sessions at once (bounded by the catalogue, each
message flattened to a line of at most 200 characters); `resolve` turns a key in either
form, or a label, into the canonical key (NOT_FOUND / CONFLICT `AMBIGUOUS_LABEL`).

`sessions.send` starts a run in the target session like `chat.send` (refused with
FORBIDDEN when the session's `sendPolicy` is `deny`); with `wait` it answers
`{runId, status, reply}` once the run ended. `reset` clears the transcript and keeps the
entry; `delete` removes both. Both first abort the session's unfinished runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aisopod.catalogue.fields import OkResult
from aisopod.catalogue.sessions import (
    PreviewMessage,
    SessionKeyParams,
    SessionPreview,
    SessionsListParams,
    SessionsListResult,
    SessionsPatchParams,
    SessionsPatchResult,
    SessionsPreviewParams,
    SessionsPreviewResult,
    SessionsResolveParams,
    SessionsResolveResult,
    SessionsSendParams,
    SessionsSendResult,
)
from aisopod.errors import Conflict, NotFound
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.chat import WAIT_MARGIN_S
from aisopod_runtime.compaction import compacted_view
from aisopod_runtime.runs import is_terminal
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.sessions import preview

PREVIEW_READERS = 8
"""Transcript reads of one `sessions.preview` in flight at once."""


def session_handlers(parts: RuntimeService) -> dict[str, Handler]:
    runner = parts.require_runner()

    def canonical(key: str) -> tuple[str, str]:
        return parse_session_key(key, parts.agents.default_id)

    async def list_(params: SessionsListParams, ctx: CallContext) -> SessionsListResult:
        return SessionsListResult(sessions=await parts.sessions.list(params))

    async def preview_(params: SessionsPreviewParams, ctx: CallContext) -> SessionsPreviewResult:
        keys = list(dict.fromkeys(canonical(key)[0] for key in params.keys))
        gate = asyncio.Semaphore(PREVIEW_READERS)

        async def one(key: str) -> SessionPreview:
            async with gate:
                if await parts.sessions.get(key) is None:
                    return SessionPreview(key=key, status="missing", messages=[])
                messages = compacted_view(await parts.transcripts.read(key, params.limit))
            lines = [line for line in map(preview_line, messages) if line is not None]
            return SessionPreview(key=key, status="ok" if lines else "empty", messages=lines)

        return SessionsPreviewResult(previews=list(await asyncio.gather(*map(one, keys))))

    async def resolve(params: SessionsResolveParams, ctx: CallContext) -> SessionsResolveResult:
        if params.key is not None:
            key, _ = canonical(params.key)
            return SessionsResolveResult(key=key, entry=await parts.sessions.require(key))
        assert params.label is not None
        matches = await parts.sessions.labelled(params.label, params.agent_id)
        if not matches:
            raise NotFound(f"no session labelled {params.label!r}", code="SESSION_NOT_FOUND")
        if len(matches) > 1:
            raise Conflict(
                f"{len(matches)} sessions are labelled {params.label!r}; give a key or agentId",
                code="AMBIGUOUS_LABEL",
                data={"keys": [e.key for e in matches]},
            )
        return SessionsResolveResult(key=matches[0].key, entry=matches[0])

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
        "sessions.preview": preview_,
        "sessions.resolve": resolve,
        "sessions.send": send,
        "sessions.patch": patch,
        "sessions.reset": reset,
        "sessions.delete": delete,
    }
    return handlers


def preview_line(message: dict[str, Any]) -> PreviewMessage | None:
    """One transcript message as a short line; None for a record that is not a message."""
    role = message.get("role")
    if role not in ("user", "assistant", "system", "tool"):
        return None
    content = message.get("content")
    if isinstance(content, list):
        texts = [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        text = " ".join(t for t in texts if t) or f"[{len(content)} attachment(s)]"
    else:
        text = str(content or "")
    if not text and message.get("toolCalls"):
        text = "calls " + ", ".join(str(c.get("name")) for c in message["toolCalls"])
    if role == "tool" and message.get("toolName"):
        text = f"{message['toolName']}: {text}"
    return PreviewMessage(role=role, text=preview(text), ts=int(message.get("ts") or 0))
