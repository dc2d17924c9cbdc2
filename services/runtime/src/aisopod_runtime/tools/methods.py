"""`tools.catalog` and `tools.invoke`, for operators (RPC) and the HTTP `/tools/invoke`.

The surface is `http` when the call carries `Aisopod-Surface: http` (set by http-api,
see `aisopod.contracts.tools`), else `rpc`. A tool that ran and failed answers
`{ok: false, result: {error, code?, ...}}`; unknown or denied tools are NOT_FOUND and
bad args INVALID_PARAMS, raised as errors.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aisopod.catalogue.tools import (
    ToolInfo,
    ToolsCatalogResult,
    ToolsInvokeParams,
    ToolsInvokeResult,
)
from aisopod.contracts.tools import H_SURFACE, SURFACE_HTTP
from aisopod.errors import AisopodError, InvalidParams
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.tools.registry import Surface, Tool, ToolContext


def surface_of(ctx: CallContext) -> Surface:
    return "http" if ctx.headers.get(H_SURFACE) == SURFACE_HTTP else "rpc"


async def run_tool(tool: Tool, raw_args: dict[str, Any], ctx: ToolContext, timeout_s: float) -> Any:
    """Validate and run one call; INVALID_PARAMS for bad args, errors raised as they come."""
    args = tool.parse(raw_args)
    async with asyncio.timeout(timeout_s):
        return await tool.handler(args, ctx)


def failure(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, TimeoutError):
        return {"error": "the tool timed out", "code": "TIMEOUT"}
    if isinstance(exc, AisopodError):
        extra = {k: v for k, v in exc.data.items() if k != "code"}
        return {"error": exc.message, "code": exc.detail_code, **extra}
    return {"error": f"the tool failed ({type(exc).__name__})", "code": "TOOL_FAILED"}


def tool_handlers(parts: RuntimeService) -> dict[str, Handler]:
    async def catalog(_: Any, ctx: CallContext) -> ToolsCatalogResult:
        tools = parts.tools.available(parts.config.tools, surface_of(ctx))
        return ToolsCatalogResult(
            tools=[
                ToolInfo(name=t.name, description=t.description, parameters=t.parameters())
                for t in tools
            ]
        )

    async def invoke(params: ToolsInvokeParams, ctx: CallContext) -> ToolsInvokeResult:
        surface = surface_of(ctx)
        tool = parts.tools.resolve(params.tool, parts.config.tools, surface)
        session_key = agent_id = None
        if params.session_key:
            session_key, agent_id = parse_session_key(params.session_key, parts.agents.default_id)
        tool_ctx = ToolContext(
            principal=ctx.principal,
            surface=surface,
            services=parts,
            session_key=session_key,
            agent_id=agent_id,
        )
        timeout_s = parts.config.tools.timeout_ms / 1000
        if tool.name == "exec":
            timeout_s += parts.config.tools.exec_approval_timeout_ms / 1000
        try:
            result = await run_tool(tool, params.args, tool_ctx, timeout_s)
        except InvalidParams:
            raise
        except (AisopodError, TimeoutError) as exc:
            return ToolsInvokeResult(ok=False, result=failure(exc))
        return ToolsInvokeResult(ok=True, result=result)

    return {"tools.catalog": catalog, "tools.invoke": invoke}
