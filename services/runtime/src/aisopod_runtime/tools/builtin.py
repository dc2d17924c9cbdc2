"""Built-in tools that do real work: time, sessions, nodes, canvas.

(`exec` lives in exec.py: it goes through exec approvals.)
"""

from __future__ import annotations

import mimetypes
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nats.js.api import ObjectMeta
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from aisopod.catalogue.sessions import SessionsListParams
from aisopod.contracts.tools import CANVAS_RESERVED
from aisopod.errors import AisopodError
from aisopod_runtime.tools.registry import Tool, ToolContext, ToolError

CANVAS_MAX_BYTES = 4 * 1024 * 1024
_CANVAS_PATH = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")


class Args(BaseModel):
    """Tool args: camelCase like every wire shape, unknown fields rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TimeArgs(Args):
    timezone: str | None = Field(None, description="IANA zone, e.g. Europe/Paris; default UTC")


async def current_time(args: TimeArgs, ctx: ToolContext) -> dict[str, Any]:
    try:
        zone = ZoneInfo(args.timezone) if args.timezone else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown timezone {args.timezone!r}") from None
    now = datetime.now(zone)
    return {
        "iso": now.isoformat(timespec="seconds"),
        "epochMs": int(now.timestamp() * 1000),
        "timezone": args.timezone or "UTC",
        "weekday": now.strftime("%A"),
    }


class SessionsListArgs(Args):
    agent_id: str | None = None
    search: str | None = Field(None, max_length=200)
    limit: int = Field(20, ge=1, le=100)


async def sessions_list(args: SessionsListArgs, ctx: ToolContext) -> dict[str, Any]:
    params = SessionsListParams(agent_id=args.agent_id, search=args.search, limit=args.limit)
    entries = await ctx.services.sessions.list(params)
    return {
        "sessions": [
            e.model_dump(
                by_alias=True, include={"key", "agent_id", "label", "updated_at", "last_message"}
            )
            for e in entries
        ]
    }


class SessionsSendArgs(Args):
    session_key: str = Field(min_length=1, max_length=512)
    message: str = Field(min_length=1, max_length=256 * 1024)
    wait: bool = Field(True, description="wait for the reply")
    timeout_ms: int = Field(60_000, ge=1_000, le=600_000)


async def sessions_send(args: SessionsSendArgs, ctx: ToolContext) -> dict[str, Any]:
    runner = ctx.services.require_runner()
    submitted = await runner.submit(
        args.session_key,
        args.message,
        ctx.principal,
        timeout_ms=args.timeout_ms,
        source="sessions_send",
        origin_session=ctx.session_key,
    )
    if not args.wait:
        return {"runId": submitted.run_id, "sessionKey": submitted.session_key}
    record = await runner.wait(submitted.run_id, args.timeout_ms / 1000 + 5)
    out: dict[str, Any] = {
        "runId": submitted.run_id,
        "sessionKey": submitted.session_key,
        "status": record.get("status") if record else "timeout",
    }
    if record and record.get("result"):
        out["reply"] = record["result"].get("text")
    if record and record.get("error"):
        out["error"] = record["error"]
    return out


class NodeInvokeArgs(Args):
    node_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_:-]+$")
    command: str = Field(min_length=1, max_length=200)
    params: dict[str, JsonValue] | None = None
    timeout_ms: int = Field(30_000, ge=100, le=600_000)


async def invoke_node(
    ctx: ToolContext, node_id: str, command: str, params: Any, timeout_ms: int
) -> Any:
    """`node.invoke` through ws-gateway (which holds the node's connection), as the caller."""
    body: dict[str, Any] = {"nodeId": node_id, "command": command, "timeoutMs": timeout_ms}
    if params is not None:
        body["params"] = params
    if ctx.run_id and ctx.call_id:  # a retried tool call must not run twice on the node
        body["idempotencyKey"] = f"{ctx.run_id}:{ctx.call_id}"
    try:
        return await ctx.services.host.bus.call(
            "node.invoke", body, principal=ctx.principal, timeout=timeout_ms / 1000 + 5
        )
    except AisopodError as exc:
        raise ToolError(f"node.invoke failed: {exc.message}", data=exc.data) from None


async def node_invoke(args: NodeInvokeArgs, ctx: ToolContext) -> Any:
    return await invoke_node(ctx, args.node_id, args.command, args.params, args.timeout_ms)


class CanvasWriteArgs(Args):
    path: str = Field(min_length=1, max_length=512, description="e.g. reports/today.html")
    content: str = Field(max_length=CANVAS_MAX_BYTES)
    content_type: str | None = Field(None, max_length=200)


async def canvas_write(args: CanvasWriteArgs, ctx: ToolContext) -> dict[str, Any]:
    if not _CANVAS_PATH.match(args.path) or ".." in args.path.split("/"):
        raise ToolError(f"bad canvas path {args.path!r}: use letters, digits, ._- and /")
    if args.path.split("/", 1)[0] == CANVAS_RESERVED:
        raise ToolError(f"bad canvas path {args.path!r}: {CANVAS_RESERVED}/ is reserved")
    data = args.content.encode()
    store = await ctx.services.host.object_store("canvas")
    meta = _object_meta(args.path, args.content_type)
    await store.put(args.path, data, meta=meta)
    return {"path": args.path, "bytes": len(data), "url": f"/canvas/{args.path}"}


def _object_meta(path: str, content_type: str | None) -> ObjectMeta:
    # Header values are lists, as NATS object stores keep them (Go's nats.Header).
    kind = content_type or mimetypes.guess_type(path)[0] or "text/plain; charset=utf-8"
    return ObjectMeta(name=path, headers={"Content-Type": [kind]})


BUILTIN_TOOLS: tuple[Tool, ...] = (
    Tool(
        "current_time",
        "The current date and time, optionally in an IANA timezone.",
        TimeArgs,
        current_time,
    ),
    Tool(
        "sessions_list",
        "List chat sessions (most recent first) with their last message.",
        SessionsListArgs,
        sessions_list,
    ),
    Tool(
        "sessions_send",
        "Send a message into another session (its agent answers); returns the reply.",
        SessionsSendArgs,
        sessions_send,
    ),
    Tool(
        "node_invoke",
        "Run a command declared by a connected node (phone, desktop) and return its result.",
        NodeInvokeArgs,
        node_invoke,
        dangerous=True,
    ),
    Tool(
        "canvas_write",
        "Write a file to the canvas (served under /canvas/<path>), e.g. an HTML page.",
        CanvasWriteArgs,
        canvas_write,
    ),
)
