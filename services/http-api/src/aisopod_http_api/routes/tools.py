"""`/tools/invoke`: the tool catalogue (GET, R) and one tool run (POST, W).

Runs go through the same policy as agent tool calls (the runtime's allow/deny lists) and
the HTTP deny list `tools.httpDeny` (tools that spawn sessions, edit cron or config, or run
commands), checked here before any call and again by the runtime (aisopod.contracts.tools:
the calls carry `Aisopod-Surface: http`). A denied or unknown tool is 404, so the policy
does not reveal which tools exist; the catalogue lists only what HTTP may run. Bad args 400.

A tool that ran and failed (a bad canvas path, an unknown timezone, a node that refused) is
422: the request was well formed and its args passed the tool's schema, the tool could not
do it. The body is the plain error (`type: tool_error`, the tool's message) with the tool's
own `result` (`{error, code, ...}`) beside it, as the WebSocket `tools.invoke` answers it.
A tool that timed out is 504, like every other timeout of the API.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import JsonValue, ValidationError
from starlette.responses import Response

from aisopod.catalogue.tools import ToolInfo, ToolsInvokeParams
from aisopod.contracts.tools import http_tool_catalog, http_tool_invoke
from aisopod.errors import NotFound
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.edge import BODY_KEY
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.completions import parse_json_object, validation_error
from aisopod_http_api.routes.shapes import PLAIN_ERRORS, Ok, OkResult, PlainError
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["tools"], responses=PLAIN_ERRORS)


class ToolCatalog(Ok):
    tools: list[ToolInfo]


class ToolFailed(PlainError):
    """A tool that ran and failed: the plain error, and the tool's own answer."""

    result: JsonValue = None


TOOL_FAILED_STATUS = 422
TOOL_TIMEOUT_STATUS = 504


def _denied(api: HttpApi, tool: str) -> bool:
    """`tools.httpDeny` entries are names or shell-style patterns (`canvas_*`)."""
    return any(fnmatch.fnmatchcase(tool, pattern) for pattern in api.config.tools.http_deny)


@router.get("/tools/invoke", response_model=ToolCatalog, summary="Tools HTTP may run")
async def catalog(
    principal: Principal = Depends(requires(Requirement.READ)), api: HttpApi = Depends(api_of)
) -> Any:
    result = await http_tool_catalog(api.host.bus, principal)
    tools = [
        t
        for t in result.get("tools", [])
        if isinstance(t, dict) and not _denied(api, str(t.get("name", "")))
    ]
    return {"ok": True, "tools": tools}


@router.post(
    "/tools/invoke",
    response_model=OkResult,
    summary="Run one tool",
    responses={
        TOOL_FAILED_STATUS: {"model": ToolFailed, "description": "the tool ran and failed"},
        TOOL_TIMEOUT_STATUS: {"model": ToolFailed, "description": "the tool timed out"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ToolsInvokeParams.model_json_schema(by_alias=True)}
            },
        }
    },
)
async def invoke(
    request: Request,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> Any:
    # Parsed here with orjson like every other body (the JSON that goes on to NATS is
    # orjson's too, so what parses here also encodes: no 64-bit overflow on the way out).
    try:
        body = ToolsInvokeParams.model_validate(parse_json_object(request.scope.get(BODY_KEY, b"")))
    except ValidationError as exc:
        raise validation_error(exc) from None
    if _denied(api, body.tool):
        raise NotFound(f"no tool {body.tool!r}")
    timeout = api.config.tools.timeout_ms / 1000 + 10  # the runtime answers a slow tool first
    result = await http_tool_invoke(
        api.host.bus,
        principal,
        body.tool,
        dict(body.args),
        session_key=body.session_key,
        timeout=timeout,
    )
    if isinstance(result, dict) and result.get("ok") is False:
        return _tool_failed(result.get("result"))
    return {"ok": True, "result": result.get("result") if isinstance(result, dict) else result}


def _tool_failed(failure: Any) -> Response:
    detail = failure if isinstance(failure, dict) else {}
    timed_out = detail.get("code") == "TIMEOUT"
    body = ToolFailed(
        error={
            "type": "timeout" if timed_out else "tool_error",
            "message": str(detail.get("error") or "the tool failed"),
        },
        result=failure,
    )
    return Response(
        body.model_dump_json(),
        status_code=TOOL_TIMEOUT_STATUS if timed_out else TOOL_FAILED_STATUS,
        media_type="application/json",
    )
