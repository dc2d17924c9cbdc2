"""config.get / schema / set / patch / apply over the stored gateway configuration.

Writes go through `ConfigStore.write` (compare-and-set on the revision read, so a stale
`baseHash` is CONFLICT even between two replicas); the client's document is validated
against `GatewayConfig` before anything is written (INVALID_PARAMS with the errors), and
REDACTED placeholders get the stored secret back. Each write is counted by the control
write limit, broadcasts `config.changed {hash, paths}`, and returns once this replica's own
watcher runs the new document (so a `config.get` here reads its own write).
`config.apply` then waits until every live instance of every service reports the new hash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aisopod.catalogue.config import (
    ConfigApplyParams,
    ConfigApplyResult,
    ConfigGetResult,
    ConfigHashResult,
    ConfigPatchParams,
    ConfigPatchResult,
    ConfigSchemaResult,
    ConfigSetParams,
    InstanceApplied,
)
from aisopod.config.model import restore_redacted
from aisopod.config.store import ConfigSnapshot, ConfigStore, parse_document
from aisopod.discovery import config_reports, discover
from aisopod.errors import Conflict
from aisopod.host import ServiceHost
from aisopod.listings import config_get_result, config_schema_result
from aisopod.principal import Principal
from aisopod.rpc import CallContext
from aisopod.wire import EmptyParams
from aisopod_runtime.control_writes import WriteLimiter

log = logging.getLogger("aisopod.runtime.config")

LOCAL_APPLY_WAIT_S = 2.0
POLL_S = 0.2


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge recursively, null removes a member,
    anything else (arrays included) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose value differs (lists compare whole), sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(changed_paths(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "."]


class ConfigMethods:
    """The handlers of the config.* methods for one runtime instance."""

    def __init__(self, host: ServiceHost, limiter: WriteLimiter) -> None:
        self.host = host
        self.limiter = limiter
        self._get_cache: tuple[str, ConfigGetResult] | None = None

    @property
    def store(self) -> ConfigStore:
        return self.host.config.store

    # -- reads -----------------------------------------------------------------------------
    async def get(self, _: EmptyParams, ctx: CallContext) -> ConfigGetResult:
        snapshot = self.host.config.snapshot
        cached = self._get_cache
        if cached is None or cached[0] != f"{snapshot.hash}:{snapshot.revision}":
            result = config_get_result(snapshot)
            cached = (f"{snapshot.hash}:{snapshot.revision}", result)
            self._get_cache = cached
        return cached[1]

    async def schema(self, _: EmptyParams, ctx: CallContext) -> ConfigSchemaResult:
        return config_schema_result()

    # -- writes ----------------------------------------------------------------------------
    async def set(self, params: ConfigSetParams, ctx: CallContext) -> ConfigHashResult:
        snapshot = await self.write(ctx.principal, params.base_hash, document=params.config)
        return ConfigHashResult(hash=snapshot.hash)

    async def patch(self, params: ConfigPatchParams, ctx: CallContext) -> ConfigPatchResult:
        snapshot = await self.write(ctx.principal, params.base_hash, patch=params.patch)
        return ConfigPatchResult(hash=snapshot.hash, config=snapshot.config.redacted())

    async def apply(self, params: ConfigApplyParams, ctx: CallContext) -> ConfigApplyResult:
        snapshot = await self.write(
            ctx.principal, params.base_hash, document=params.config, patch=params.patch
        )
        return await self.await_applied(snapshot.hash)

    async def write(
        self,
        principal: Principal,
        base_hash: str,
        *,
        document: dict[str, Any] | None = None,
        patch: dict[str, Any] | None = None,
    ) -> ConfigSnapshot:
        """Validate and store a whole `document` or a merge `patch` on top of `base_hash`.

        Only a write that changes the configuration counts toward the control-write limit:
        a stale `baseHash`, an invalid document or a no-op is answered without using it up.
        """
        current = await self.store.load()
        if base_hash != current.hash:
            raise Conflict(
                "the configuration changed since baseHash was read; reload and reapply",
                code="STALE_BASE_HASH",
                currentHash=current.hash,
            )
        # A stored document that fails validation is merged onto as it is, not as salvaged:
        # a repair then loses nothing of it, and a write that leaves a broken part broken is
        # refused naming it (INVALID_PARAMS) instead of dropping it silently.
        stored = current.stored if current.stored is not None else current.config.document()
        proposed = merge_patch(stored, patch) if patch is not None else document
        config = parse_document(restore_redacted(proposed, stored))
        if config.document() == stored:
            return current  # nothing to change: no write, no event, nothing counted
        await self.limiter.admit(principal, "config write")
        snapshot = await self.store.write(config, base_hash)
        paths = changed_paths(stored, config.document())
        log.info(
            "configuration written",
            extra={"hash": snapshot.hash, "paths": paths, "principal": principal.id},
        )
        try:
            event = {"hash": snapshot.hash, "paths": paths}
            await self.host.bus.publish_event("config.changed", event)
        except Exception:  # written is written: a lost event must not fail the call
            log.warning("could not publish config.changed", exc_info=True)
        await self.host.config.wait_for_hash(snapshot.hash, LOCAL_APPLY_WAIT_S)
        return snapshot

    async def await_applied(self, config_hash: str) -> ConfigApplyResult:
        """Wait until every live instance reports `config_hash` (or the apply timeout);
        `applied[service]` is true when all its live instances do."""
        timeout = self.host.config.current.updates.apply_timeout_ms / 1000
        deadline = time.monotonic() + timeout
        while True:
            instances, reports = await asyncio.gather(
                discover(self.host.bus), config_reports(self.host.bus)
            )
            rows = [
                InstanceApplied(
                    service=i.service,
                    instance=i.instance,
                    hash=reports.get(i.key),
                    ok=reports.get(i.key) == config_hash,
                )
                for i in instances
            ]
            done = bool(rows) and all(r.ok for r in rows)
            if done or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        applied: dict[str, bool] = {}
        for row in rows:
            applied[row.service] = applied.get(row.service, True) and row.ok
        if not done:
            log.warning(
                "config.apply timed out",
                extra={"hash": config_hash, "pending": [r.instance for r in rows if not r.ok]},
            )
        return ConfigApplyResult(hash=config_hash, applied=applied, complete=done, instances=rows)
