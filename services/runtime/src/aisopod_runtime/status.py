"""status: every service instance and version (nats.micro), connections, agents, sessions,
uptime, the last 30 days' usage. Admins also get internals: per-instance RPC stats, stream
sizes, the config hash (and what of the stored config fails validation and is not in use)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aisopod.catalogue.system import StatusInternals, StatusResult
from aisopod.config.store import ConfigSnapshot
from aisopod.discovery import Instance, service_stats
from aisopod.host import ServiceHost
from aisopod.jsread import live_keys
from aisopod.listings import AGENT_KEY_PREFIX, started_ms, status_result
from aisopod.rpc import CallContext
from aisopod.scopes import Requirement
from aisopod.state import STREAMS, stream_name
from aisopod_runtime.providers import ProviderRegistry
from aisopod_runtime.usage.ledger import shared_ledger
from aisopod_runtime.usage.service import usage_summary


class StatusMethods:
    def __init__(self, host: ServiceHost, providers: ProviderRegistry | None = None) -> None:
        self.host = host
        self.providers = providers

    async def count(self, bucket: str, prefix: str = "") -> int:
        """Live keys of a bucket (those starting with `prefix`)."""
        kv = await self.host.kv(bucket)
        return sum(1 for key in await live_keys(kv) if key.startswith(prefix))

    async def status(self, _: Any, ctx: CallContext) -> StatusResult:
        instances, connections, agents, sessions, usage = await asyncio.gather(
            service_stats(self.host.bus),
            self.count("presence"),
            # Agents only: the bucket also holds each agent's files (`files.<agentId>`).
            self.count("agents", AGENT_KEY_PREFIX),
            self.count("sessions"),
            usage_summary(shared_ledger(self.host.bus)),
        )
        admin = ctx.principal.may(Requirement.ADMIN)
        return status_result(
            instances,
            connections=connections,
            agents=agents,
            sessions=sessions,
            now_ms=int(time.time() * 1000),
            usage=usage,
            internals=await self.internals(instances) if admin else None,
        )

    async def internals(self, instances: list[Instance]) -> StatusInternals:
        js = self.host.bus.js
        streams: dict[str, Any] = {}
        for stream in STREAMS:
            name = stream_name(self.host.settings.subject_prefix, stream.name)
            try:
                state = (await js.stream_info(name)).state
                streams[stream.name] = {
                    "messages": state.messages,
                    "bytes": state.bytes,
                    "firstSeq": state.first_seq,
                    "lastSeq": state.last_seq,
                }
            except Exception as exc:
                streams[stream.name] = {"error": type(exc).__name__}
        snapshot = self.host.config.snapshot
        nc = self.host.bus.nc
        return StatusInternals(
            instances=[
                {
                    "service": i.service,
                    "instance": i.instance,
                    "microId": i.micro_id,
                    "version": i.version,
                    "startedMs": started_ms(i),
                    "endpoints": [
                        {
                            "name": e.get("name"),
                            "requests": e.get("num_requests"),
                            "errors": e.get("num_errors"),
                            "averageProcessingNs": e.get("average_processing_time"),
                        }
                        for e in i.raw.get("endpoints") or []
                        if isinstance(e, dict)
                    ],
                }
                for i in instances
            ],
            streams=streams,
            config=config_state(snapshot, self.providers),
            nats={
                "serverVersion": str(nc.connected_server_version),
                "maxPayload": nc.max_payload,
            },
            answered_by=self.host.instance,
        )


def config_state(
    snapshot: ConfigSnapshot, providers: ProviderRegistry | None = None
) -> dict[str, Any]:
    """`internals.config`: the hash and revision in use; with a stored document that fails
    validation, what is left out (`problems`); and the configured providers that cannot be
    used, id → why (`unavailableProviders`: entries left out, clients that failed to build)."""
    state: dict[str, Any] = {"hash": snapshot.hash, "revision": snapshot.revision}
    if snapshot.problems:
        state["problems"] = list(snapshot.problems)
    unavailable = providers.unavailable if providers else snapshot.unusable_providers
    if unavailable:
        state["unavailableProviders"] = dict(unavailable)
    return state
