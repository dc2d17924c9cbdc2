"""`/tools/invoke`: the tool catalogue (GET, R) and one tool run (POST, W).

Runs go through the same policy as agent tool calls (the runtime's allow/deny lists), and
first through the HTTP deny list `tools.httpDeny` (tools that spawn sessions, edit cron or
config, or run commands): a denied or unknown tool is 404, so the policy does not reveal
which tools exist; the catalogue lists only what HTTP may run. Bad args are 400.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from aisopod.catalogue.tools import ToolInfo, ToolsInvokeParams
from aisopod.errors import NotFound
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.shapes import PLAIN_ERRORS, Ok, OkResult
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["tools"], responses=PLAIN_ERRORS)


class ToolCatalog(Ok):
    tools: list[ToolInfo]


def _denied(api: HttpApi) -> frozenset[str]:
    return frozenset(api.config.tools.http_deny)


@router.get("/tools/invoke", response_model=ToolCatalog, summary="Tools HTTP may run")
async def catalog(
    principal: Principal = Depends(requires(Requirement.READ)), api: HttpApi = Depends(api_of)
) -> Any:
    result = await api.host.bus.call("tools.catalog", {}, principal=principal)
    denied = _denied(api)
    tools = [
        t for t in result.get("tools", []) if isinstance(t, dict) and t.get("name") not in denied
    ]
    return {"ok": True, "tools": tools}


@router.post("/tools/invoke", response_model=OkResult, summary="Run one tool")
async def invoke(
    body: ToolsInvokeParams,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> Any:
    if body.tool in _denied(api):
        raise NotFound(f"no tool {body.tool!r}")
    result = await api.host.bus.call("tools.invoke", body.wire(), principal=principal)
    if isinstance(result, dict) and result.get("ok") is False:
        return {"ok": False, "result": result.get("result")}
    return {"ok": True, "result": result.get("result") if isinstance(result, dict) else result}
