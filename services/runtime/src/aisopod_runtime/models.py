"""`models.list`: the configured models of every provider, merged with what each upstream
lists at `/models` (kept for `models.modelsCacheS`; an unreachable upstream only
contributes its configured models, and is asked again after `FAILURE_CACHE_S`).

Ids are `<providerId>/<modelId>`, the form agents, sessions and `/v1` use; `model` is
the provider-local id and `source` says whether the entry is configured or discovered.

Each discovery is published to KV `models` (`provider.<providerId>`, a
`ProviderDiscovery`: the settings' fingerprint, when it was fetched, until when it holds),
so the edges answer `models.list` and `/v1/models` from their replicas of it
(docs/runtime.md, "Model discovery in KV"). A background refresher asks again shortly
before an entry expires and when the providers change, so a reader never has to ask.
Several runtime replicas write with compare-and-set on the key's revision: the one that
loses adopts the winner's entry instead of overwriting it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
import time
from typing import Any

from nats.js.errors import KeyDeletedError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.models import ModelInfo, ModelsListResult
from aisopod.config.model import GatewayConfig
from aisopod.config.sections.providers import ProviderConfig
from aisopod.jsread import live_keys
from aisopod.listings import (
    MODELS_KEY_PREFIX,
    DiscoveredEntry,
    ProviderDiscovery,
    discovers_models,
    discovery_key,
    models_list,
    provider_fingerprint,
    usable_discovery,
)
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.providers import ProviderError
from aisopod_runtime.service import RuntimeService

log = logging.getLogger("aisopod.runtime.models")

FAILURE_CACHE_S = 30.0
DISCOVERY_TIMEOUT_S = 5.0
REFRESH_AHEAD_S = DISCOVERY_TIMEOUT_S + 1.0
"""An entry is asked again this long before it expires (at most half its lifetime), so the
new one is stored before readers would have to go to the owner."""
REFRESH_JITTER_S = 1.0
"""Spread between runtime replicas, so one usually refreshes and the others adopt."""
IDLE_WAKE_S = 60.0
"""The refresher's longest sleep when nothing is due (a config change wakes it anyway)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def refresh_ahead_ms(entry: ProviderDiscovery) -> int:
    lifetime = entry.expires_at_ms - entry.fetched_at_ms
    return int(min(REFRESH_AHEAD_S * 1000, lifetime / 2))


class ModelCatalog:
    def __init__(self, parts: RuntimeService, kv: KeyValue) -> None:
        self.parts = parts
        self.kv = kv
        # The newest discovery this process knows per provider (its own or adopted from KV).
        self._known: dict[str, ProviderDiscovery] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._purge = True  # on start and after a config change: drop entries of old providers
        self._task: asyncio.Task[None] | None = None

    # -- the owner's answer -----------------------------------------------------------
    async def list(self) -> builtins.list[ModelInfo]:
        configs = list(self.parts.providers.configs.values())
        discovered = await asyncio.gather(*(self._discovered(c) for c in configs))
        return models_list(configs, discovered)

    async def _discovered(self, config: ProviderConfig) -> builtins.list[DiscoveredEntry]:
        if not discovers_models(config):
            return []
        return (await self.current(config)).models

    async def current(self, config: ProviderConfig, *, ahead: bool = False) -> ProviderDiscovery:
        """A discovery usable for `config` (with `ahead`: beyond the refresh margin too):
        the one this process knows, the stored one, or a new one asked of the upstream
        and stored."""
        known = self._known.get(config.id)
        if self._usable(known, config, ahead):
            assert known is not None
            return known
        async with self._locks.setdefault(config.id, asyncio.Lock()):
            known = self._known.get(config.id)
            if self._usable(known, config, ahead):
                assert known is not None
                return known
            stored, revision = await self._load(config.id)
            if stored is not None and self._usable(stored, config, ahead):
                self._known[config.id] = stored
                return stored
            entry = await self._ask_upstream(config)
            self._known[config.id] = await self._store(entry, config, revision)
            return self._known[config.id]

    def _usable(self, entry: ProviderDiscovery | None, config: ProviderConfig, ahead: bool) -> bool:
        if entry is None:
            return False
        margin = refresh_ahead_ms(entry) if ahead else 0
        return usable_discovery(entry, config, now_ms() + margin)

    async def _ask_upstream(self, config: ProviderConfig) -> ProviderDiscovery:
        ttl = self.parts.config.models.models_cache_s
        fetched = now_ms()
        provider = self.parts.providers.get(config.id)
        ok, found = False, []
        if provider is None:  # unusable settings (logged when they were applied)
            ttl = min(ttl, FAILURE_CACHE_S)
        else:
            try:
                async with asyncio.timeout(DISCOVERY_TIMEOUT_S):
                    found = await provider.list_models()
                ok = True
            except (ProviderError, TimeoutError) as exc:
                log.warning("listing the models of %s failed: %s", config.id, exc)
                ttl = min(ttl, FAILURE_CACHE_S)
        return ProviderDiscovery(
            provider_id=config.id,
            fingerprint=provider_fingerprint(config),
            fetched_at_ms=fetched,
            expires_at_ms=fetched + int(ttl * 1000),
            ok=ok,
            models=[DiscoveredEntry(id=m.id, context_window=m.context_window) for m in found],
        )

    # -- KV -------------------------------------------------------------------------------
    async def _load(self, provider_id: str) -> tuple[ProviderDiscovery | None, int]:
        """The stored entry (None: absent or unreadable) and the key's revision (0: never
        written; -1: KV did not answer, so nothing is stored), for a compare-and-set."""
        try:
            got = await self.kv.get(discovery_key(provider_id))
        except KeyDeletedError as exc:
            return None, exc.entry.revision if exc.entry and exc.entry.revision else 0
        except NotFoundError:
            return None, 0
        except Exception:  # NATS trouble: the owner still answers, from the upstream
            log.warning("reading the models of %s failed", provider_id, exc_info=True)
            return None, -1
        revision = got.revision or 0
        try:
            return ProviderDiscovery.model_validate(codec.loads(got.value or b"")), revision
        except ValueError:  # an older or damaged entry: replaced by the next write
            return None, revision

    async def _store(
        self, entry: ProviderDiscovery, config: ProviderConfig, revision: int
    ) -> ProviderDiscovery:
        """Publish `entry` unless another replica stored one for these settings meanwhile:
        then theirs is used (the same answer everywhere, no overwriting each other)."""
        if entry.expires_at_ms <= entry.fetched_at_ms or revision < 0:
            return entry  # modelsCacheS 0 (nothing to share), or KV unreachable
        value = codec.dumps(codec.to_wire(entry))
        key = discovery_key(entry.provider_id)
        for _ in range(2):
            try:
                await self.kv.update(key, value, last=revision)
                return entry
            except KeyWrongLastSequenceError:
                stored, revision = await self._load(entry.provider_id)
                if stored is not None and usable_discovery(stored, config, now_ms()):
                    return stored
            except Exception:  # NATS trouble: still answer from what the upstream said
                log.warning("storing the models of %s failed", entry.provider_id, exc_info=True)
                return entry
        return entry

    async def _purge_removed(self, configs: builtins.list[ProviderConfig]) -> None:
        wanted = {discovery_key(c.id) for c in configs if discovers_models(c)}
        for key in await live_keys(self.kv):
            if key.startswith(MODELS_KEY_PREFIX) and key not in wanted:
                await self.kv.delete(key)
                self._known.pop(key.removeprefix(MODELS_KEY_PREFIX), None)

    # -- the refresher --------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._refresh(), name="models-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def on_config(self, new: GatewayConfig, old: GatewayConfig) -> None:
        if new.models != old.models:
            self.providers_changed()

    def providers_changed(self) -> None:
        """Refresh now: discover new or changed providers, drop entries of removed ones."""
        self._purge = True
        self._wake.set()

    async def _refresh(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._refresh_once()
            except Exception:  # NATS or an upstream misbehaving: try again later
                log.warning("refreshing the model lists failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wait_s())

    async def _refresh_once(self) -> None:
        configs = [c for c in self.parts.providers.configs.values() if discovers_models(c)]
        if self._purge:
            self._purge = False
            try:
                await self._purge_removed(configs)
            except Exception:
                self._purge = True  # tried again on the next pass
                raise
        if self.parts.config.models.models_cache_s <= 0:  # not kept: every list asks
            return
        await asyncio.gather(*(self.current(c, ahead=True) for c in configs))

    def _next_wait_s(self) -> float:
        """Until the next entry is due for refresh (with jitter), at most IDLE_WAKE_S."""
        if self.parts.config.models.models_cache_s <= 0:
            return IDLE_WAKE_S
        due: builtins.list[float] = [IDLE_WAKE_S]
        now = now_ms()
        for config in self.parts.providers.configs.values():
            entry = self._known.get(config.id)
            if entry is not None and discovers_models(config):
                due.append((entry.expires_at_ms - refresh_ahead_ms(entry) - now) / 1000)
        return max(min(due), 0.05) + random.uniform(0, REFRESH_JITTER_S)


def model_handlers(catalog: ModelCatalog) -> dict[str, Handler]:
    async def models_list(_: Any, ctx: CallContext) -> ModelsListResult:
        return ModelsListResult(models=await catalog.list())

    return {"models.list": models_list}
