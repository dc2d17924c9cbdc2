"""`/tools/invoke`: the tool catalogue (GET, R) and one tool run (POST, W).

Runs go through the same policy as agent tool calls (the runtime's allow/deny lists) and
the HTTP deny list `tools.httpDeny` (tools that spawn sessions, edit cron or config, or run
commands), checked here before any call and again by the runtime (aisopod.contracts.tools:
the calls carry `Aisopod-Surface: http`). A denied or unknown tool is 404, so the policy
does not reveal which tools exist; the catalogue lists only what HTTP may run. Bad args 400.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from aisopod.catalogue.tools import ToolInfo, ToolsInvokeParams
from aisopod.contracts.tools import http_tool_catalog, http_tool_invoke
from aisopod.errors import NotFound
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.edge import BODY_KEY
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.completions import parse_json_object, validation_error
from aisopod_http_api.routes.shapes import PLAIN_ERRORS, Ok, OkResult
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["tools"], responses=PLAIN_ERRORS)


class ToolCatalog(Ok):
    tools: list[ToolInfo]


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
        return {"ok": False, "result": result.get("result")}
    return {"ok": True, "result": result.get("result") if isinstance(result, dict) else result}
