"""`GET /v1/models`: agents as `aisopod/<agentId>`, then the proxied provider models.

Agents come from this process's replica of KV `agents` (edgereads.py), listed as the
runtime's `agents.list` lists them; when the replica cannot answer (not warm yet, the
default agent not stored yet) from the runtime (`agents.list`), and while that is
unreachable the configured default agent still appears, so a client can always see what it
may call. Provider models
are those of `openai`-kind providers (the ones `/v1/chat/completions` can proxy), as
`<providerId>/<modelId>`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from aisopod.catalogue.models import ModelInfo, ModelsListResult
from aisopod.errors import NotFound, Unavailable
from aisopod.listings import models_list
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.identity import requires
from aisopod_http_api.openai_models import ModelList, ModelObject, OpenAIError
from aisopod_http_api.service import HttpApi, api_of

router = APIRouter(tags=["openai"], responses={"default": {"model": OpenAIError}})


async def _models(api: HttpApi, principal: Principal) -> list[ModelObject]:
    default_id = api.config.models.agents.default_id
    agent_ids = await api.edge_reads.agent_ids(principal.id, default_id)
    if agent_ids is None:
        try:
            listed = await api.host.bus.call("agents.list", {}, principal=principal)
            agent_ids = [str(a["id"]) for a in listed.get("agents", []) if isinstance(a, dict)]
        except Unavailable:
            agent_ids = [default_id]
    models = [ModelObject(id=f"aisopod/{agent}", owned_by="aisopod") for agent in agent_ids]
    proxied = api.tables.get().providers
    models += [
        ModelObject(id=m.id, owned_by=m.provider)
        for m in await _provider_models(api, principal)
        if m.provider in proxied
    ]
    return models


async def _provider_models(api: HttpApi, principal: Principal) -> list[ModelInfo]:
    # One list object per configuration: the edge reuses its answer while it is the same.
    providers = api.config.models.providers
    listed = await api.edge_reads.provider_models(principal.id, providers)
    if listed is not None:
        return listed
    try:  # the owner discovers what is missing and stores it for the next read
        answer = await api.host.bus.call("models.list", {}, principal=principal)
        return ModelsListResult.model_validate(answer).models
    except Unavailable:
        return models_list(providers, [[] for _ in providers])


@router.get("/v1/models", response_model=ModelList, summary="List models")
async def list_models(
    principal: Principal = Depends(requires(Requirement.READ)), api: HttpApi = Depends(api_of)
) -> ModelList:
    return ModelList(data=await _models(api, principal))


@router.get("/v1/models/{model_id:path}", response_model=ModelObject, summary="Get a model")
async def get_model(
    model_id: str,
    principal: Principal = Depends(requires(Requirement.READ)),
    api: HttpApi = Depends(api_of),
) -> ModelObject:
    for model in await _models(api, principal):
        if model.id == model_id:
            return model
    raise NotFound(f"the model {model_id!r} does not exist", openaiCode="model_not_found")
