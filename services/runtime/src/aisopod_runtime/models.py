"""`models.list`: the configured models of every provider, merged with what each upstream
lists at `/models` (cached for `models.modelsCacheS`; an unreachable upstream only
contributes its configured models, and is asked again after `FAILURE_CACHE_S`).

Ids are `<providerId>/<modelId>`, the form agents, sessions and `/v1` use; `model` is
the provider-local id and `source` says whether the entry is configured or discovered.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from typing import Any

from aisopod.catalogue.models import ModelInfo, ModelsListResult
from aisopod.config.sections.providers import ProviderConfig
from aisopod.listings import models_list
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.providers import DiscoveredModel, ProviderError
from aisopod_runtime.service import RuntimeService

log = logging.getLogger("aisopod.runtime.models")

FAILURE_CACHE_S = 30.0
DISCOVERY_TIMEOUT_S = 5.0


class ModelCatalog:
    def __init__(self, parts: RuntimeService) -> None:
        self.parts = parts
        self._cache: dict[str, tuple[float, ProviderConfig, builtins.list[DiscoveredModel]]] = {}

    async def list(self) -> list[ModelInfo]:
        configs = list(self.parts.providers.configs.values())
        discovered = await asyncio.gather(*(self._discover(c) for c in configs))
        return models_list(configs, discovered)

    async def _discover(self, config: ProviderConfig) -> builtins.list[DiscoveredModel]:
        if config.kind != "openai" or not config.discover_models:
            return []
        cached = self._cache.get(config.id)
        if cached is not None and cached[0] > time.monotonic() and cached[1] == config:
            return cached[2]
        provider = self.parts.providers.get(config.id)
        if provider is None:
            return []
        ttl = self.parts.config.models.models_cache_s
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                found = await provider.list_models()
        except (ProviderError, TimeoutError) as exc:
            log.warning("listing the models of %s failed: %s", config.id, exc)
            found, ttl = [], min(ttl, FAILURE_CACHE_S)
        self._cache[config.id] = (time.monotonic() + ttl, config, found)
        return found


def model_handlers(catalog: ModelCatalog) -> dict[str, Handler]:
    async def models_list(_: Any, ctx: CallContext) -> ModelsListResult:
        return ModelsListResult(models=await catalog.list())

    return {"models.list": models_list}
