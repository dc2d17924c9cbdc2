"""`GET /status` (R): the runtime's `status` result. For callers without admin it is built
here from this process's replicas (edgereads.py) when they are warm, with the usage the
runtime's `usage.status` gives the caller; admins get the internals, which only the
runtime gathers, from the runtime."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.responses import Response

from aisopod.catalogue.system import StatusResult
from aisopod.catalogue.usage import UsageSummary
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.shapes import PLAIN_ERRORS
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["gateway"], responses=PLAIN_ERRORS)
# The fields of `usage.status` that `status` shows (it leaves out the series and budgets).
_SUMMARY = [field.alias or name for name, field in UsageSummary.model_fields.items()]


# Documented, not re-validated: the RPC's result goes out as the runtime made it.
@router.get(
    "/status",
    response_model=None,
    responses={200: {"model": StatusResult}},
    summary="Gateway status",
)
async def status(
    principal: Principal = Depends(requires(Requirement.READ)), api: HttpApi = Depends(api_of)
) -> Any:
    async def usage() -> UsageSummary:
        found = await api.host.bus.call("usage.status", {}, principal=principal)
        return UsageSummary.model_validate({k: found[k] for k in _SUMMARY if k in found})

    admin = principal.may(Requirement.ADMIN)
    body = await api.edge_reads.status(None if admin else principal.id, usage)
    if body is not None:
        return Response(body, media_type="application/json")
    return await api.host.bus.call("status", {}, principal=principal)
