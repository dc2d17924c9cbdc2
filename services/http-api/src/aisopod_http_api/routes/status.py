"""`GET /status` (R): the runtime's `status` RPC, unchanged (admins get more, as there)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from aisopod.catalogue.system import StatusResult
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.shapes import PLAIN_ERRORS
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["gateway"], responses=PLAIN_ERRORS)


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
    return await api.host.bus.call("status", {}, principal=principal)
