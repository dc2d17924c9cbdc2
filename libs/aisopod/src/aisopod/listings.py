"""The results of the read methods, built from stored state by pure functions.

One code path for both places that answer them: the owner (runtime, reading KV) and the
edge (ws-gateway, reading its in-memory replica of the same KV entries), so both give the
same bytes for the same state. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Literal

import orjson
from pydantic import Field

from aisopod.catalogue.agents import Agent, AgentsListResult
from aisopod.catalogue.config import ConfigGetResult, ConfigSchemaResult
from aisopod.catalogue.cron import CronJob, CronListResult, Payload, Schedule
from aisopod.catalogue.models import ModelInfo
from aisopod.catalogue.system import ServiceInstance, ServiceStatus, StatusInternals, StatusResult
from aisopod.catalogue.usage import UsageSummary
from aisopod.config.model import GatewayConfig
from aisopod.config.sections.providers import ProviderConfig
from aisopod.config.store import ConfigSnapshot
from aisopod.discovery import Instance
from aisopod.wire import WireModel

# -- config ------------------------------------------------------------------------------


def config_get_result(snapshot: ConfigSnapshot) -> ConfigGetResult:
    """`config.get`: the document in use with secrets redacted, its hash and KV revision,
    and what of the stored document fails validation and is not in use."""
    return ConfigGetResult(
        config=snapshot.config.redacted(),
        hash=snapshot.hash,
        revision=snapshot.revision,
        problems=list(snapshot.problems) or None,
    )


@cache
def config_schema_result() -> ConfigSchemaResult:
    """`config.schema`: the JSON Schema of the whole document (fixed per build)."""
    return ConfigSchemaResult(GatewayConfig.model_json_schema(by_alias=True))


# -- agents ------------------------------------------------------------------------------

AGENT_KEY_PREFIX = "agent."


def agents_list_result(agents: Iterable[Agent], default_id: str) -> AgentsListResult | None:
    """`agents.list`: the default agent first, then by id; None when the default agent is
    not stored yet (only the owner may create it)."""
    listed = list(agents)
    if not any(a.id == default_id for a in listed):
        return None
    ordered = sorted(listed, key=lambda a: (a.id != default_id, a.id))
    return AgentsListResult(default_id=default_id, agents=ordered)


# -- cron --------------------------------------------------------------------------------

CRON_JOB_KEY_PREFIX = "job."


class Lease(WireModel):
    """Who fires the claimed slot; a lease past `expiresAtMs` no longer blocks the job."""

    instance: str
    run_id: str
    due_at_ms: int
    expires_at_ms: int


class JobRecord(WireModel):
    """A cron job as stored in KV `cron` under `job.<jobId>`."""

    job_id: str
    name: str
    schedule: Schedule
    payload: Payload
    enabled: bool = True
    created_at_ms: int
    updated_at_ms: int
    anchor_ms: int = Field(description="grid origin of `every` (the last schedule change)")
    next_run_at_ms: int | None = None
    last_run_at_ms: int | None = None
    last_status: str | None = None
    last_run_id: str | None = None
    lease: Lease | None = None

    def public(self) -> CronJob:
        """The job as cron.list/add/update return it."""
        out = self.model_dump(by_alias=True, mode="json", exclude={"lease", "anchor_ms"})
        out["running"] = self.lease is not None
        return CronJob.model_validate(out)


def cron_list_result(jobs: Iterable[JobRecord], include_disabled: bool) -> CronListResult:
    """`cron.list`: enabled jobs (all with `include_disabled`), soonest next run first."""
    listed = [j for j in jobs if include_disabled or j.enabled]
    listed.sort(key=lambda j: (j.next_run_at_ms is None, j.next_run_at_ms or 0, j.name))
    return CronListResult(jobs=[j.public() for j in listed])


# -- models ------------------------------------------------------------------------------


def discovers_models(config: ProviderConfig) -> bool:
    """Whether `models.list` asks this provider's upstream (`/models`) for its models."""
    return config.kind == "openai" and config.discover_models


MODELS_KEY_PREFIX = "provider."
"""KV `models`: `provider.<providerId>` → the provider's last discovery (ProviderDiscovery)."""


def discovery_key(provider_id: str) -> str:
    return f"{MODELS_KEY_PREFIX}{provider_id}"


class DiscoveredEntry(WireModel):
    id: str
    context_window: int | None = None


class ProviderDiscovery(WireModel):
    """What a provider's upstream listed at `/models`, as the runtime stores it in KV
    `models`: for which settings (`fingerprint`), when, and until when it may be used."""

    provider_id: str
    fingerprint: str = Field(description="provider_fingerprint() of the settings asked with")
    fetched_at_ms: int
    expires_at_ms: int = Field(description="past it, readers ask the owner (which asks again)")
    ok: bool = Field(description="false: the upstream did not answer; no models, retried sooner")
    models: list[DiscoveredEntry] = Field(default_factory=list)


def provider_fingerprint(config: ProviderConfig) -> str:
    """A digest of every setting of a provider, secrets included (a new key or URL may list
    other models), so a stored discovery is used only for the settings it was made with.
    Readers hold the same configuration, so it tells them nothing they cannot read."""
    data = config.model_dump(mode="json", by_alias=True)
    data["apiKey"] = config.api_key.get_secret_value() if config.api_key else None
    data["headers"] = {k: v.get_secret_value() for k, v in config.headers.items()}
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def usable_discovery(stored: ProviderDiscovery | None, config: ProviderConfig, now_ms: int) -> bool:
    """Whether `stored` answers for `config` now: made with these settings, not expired."""
    return (
        stored is not None
        and stored.provider_id == config.id
        and now_ms < stored.expires_at_ms
        and stored.fingerprint == provider_fingerprint(config)
    )


def stored_models_list(
    configs: Sequence[ProviderConfig], stored: Mapping[str, ProviderDiscovery], now_ms: int
) -> tuple[list[ModelInfo], int] | None:
    """`models.list` from stored discoveries (the edges' path), with the time (ms) until
    which it holds; None when a discovering provider has no usable one (the owner
    discovers and stores it)."""
    discovered: list[Sequence[Any]] = []
    until = 2**62
    for config in configs:
        if not discovers_models(config):
            discovered.append(())
            continue
        entry = stored.get(config.id)
        if entry is None or not usable_discovery(entry, config, now_ms):
            return None
        discovered.append(entry.models)
        until = min(until, entry.expires_at_ms)
    return models_list(configs, discovered), until


def model_info(
    provider: str, model: str, window: int | None, source: Literal["config", "upstream"]
) -> ModelInfo:
    return ModelInfo(
        id=f"{provider}/{model}",
        provider=provider,
        context_window=window,
        model=model,
        source=source,
    )


def models_list(
    configs: Sequence[ProviderConfig], discovered: Sequence[Sequence[Any]]
) -> list[ModelInfo]:
    """`models.list`: each provider's configured models, then those its upstream listed
    (`discovered[i]` for `configs[i]`: items with `id` and `context_window`) that are not
    configured."""
    out: list[ModelInfo] = []
    for config, found in zip(configs, discovered, strict=True):
        seen: set[str] = set()
        for model in config.models:
            seen.add(model.id)
            out.append(model_info(config.id, model.id, model.context_window, "config"))
        for model in found:
            if model.id not in seen:
                seen.add(model.id)
                out.append(model_info(config.id, model.id, model.context_window, "upstream"))
    return out


# -- status ------------------------------------------------------------------------------


def started_ms(instance: Instance) -> int | None:
    """When an instance started, from its nats.micro stats (`started`, ISO 8601)."""
    raw = instance.raw.get("started")
    if not isinstance(raw, str):
        return None
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def status_result(
    instances: Sequence[Instance],
    *,
    connections: int,
    agents: int,
    sessions: int,
    now_ms: int,
    usage: UsageSummary | None = None,
    internals: StatusInternals | None = None,
) -> StatusResult:
    """`status`: the live instances per service, the counts, the uptime (since the oldest
    instance started), the last 30 days' usage; `internals` only for admins (the owner's,
    which reads JetStream)."""
    services: dict[str, ServiceStatus] = {}
    for inst in instances:
        entry = ServiceInstance(id=inst.instance, version=inst.version)
        services.setdefault(inst.service, ServiceStatus(instances=[])).instances.append(entry)
    starts = [s for s in map(started_ms, instances) if s is not None]
    return StatusResult(
        services=services,
        connections=connections,
        agents=agents,
        sessions=sessions,
        uptime_ms=max(now_ms - min(starts), 0) if starts else 0,
        usage=usage,
        internals=internals,
    )
