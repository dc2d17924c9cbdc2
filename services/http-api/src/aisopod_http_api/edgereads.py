"""Reads at the edge for http-api: `GET /v1/models` (and `/v1/models/{id}`) and `GET
/status` answered from in-memory replicas of KV state instead of an RPC to the runtime
(docs/http-api.md, Reads at the edge). `/v1/models`'s provider models come from the
configuration and the runtime's stored `/models` discoveries (KV `models`), as
`models.list` lists them; the same replica lets the proxy route the discovered ids.

The replicas are `aisopod.replica`'s, the same ws-gateway keeps; the results are built by
the owner's own functions (`aisopod.listings`). Every method returns None for "ask the
owner": a replica not warm yet (or over its bound), the default agent not stored yet (only
the owner creates it), an admin's `/status` (its internals read JetStream and every
instance's stats, which only the owner gathers). `/status` also carries the last 30 days'
usage, an aggregate of the `USAGE` stream no replica holds: asked of the owner's
`usage.status` per request (one RPC, instead of the owner's key listings and discovery).

The key-only `sessions` replica behind `/status`'s session count runs only while `/status`
is read (`_sessions_replica`): every agent turn writes its session twice.

Read-your-writes per principal and process: when a request that may write (any method but
GET/HEAD) ends, that principal's next edge read here first catches the replicas up with
their buckets (one JetStream round trip each, at most `SYNC_WAIT_S`; past it, the owner).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter

from aisopod import codec
from aisopod.catalogue.agents import Agent
from aisopod.catalogue.models import ModelInfo
from aisopod.catalogue.usage import UsageSummary
from aisopod.config.sections.providers import ProviderConfig
from aisopod.discovery import Instance, service_stats
from aisopod.listings import (
    AGENT_KEY_PREFIX,
    MODELS_KEY_PREFIX,
    ProviderDiscovery,
    agents_list_result,
    provider_fingerprint,
    status_result,
    stored_models_list,
)
from aisopod.ondemand import OnDemand
from aisopod.replica import KvReplica, Replica, catch_up
from aisopod.tasks import cancel_and_wait

if TYPE_CHECKING:
    from nats.js.kv import KeyValue

    from aisopod.host import ServiceHost

log = logging.getLogger("aisopod.http_api.edgereads")

EDGE_READS = Counter(
    "aisopod_http_edge_reads_total", "reads answered from this process's replicas", ["route"]
)
EDGE_FALLBACKS = Counter(
    "aisopod_http_edge_fallbacks_total",
    "edge-served reads sent to the owner (cold, lagging, admin, default agent missing)",
    ["route"],
)
_MODELS_READ, _MODELS_FALLBACK = EDGE_READS.labels("models"), EDGE_FALLBACKS.labels("models")
_STATUS_READ, _STATUS_FALLBACK = EDGE_READS.labels("status"), EDGE_FALLBACKS.labels("status")
_LIST_READ, _LIST_FALLBACK = (
    EDGE_READS.labels("models-providers"),
    EDGE_FALLBACKS.labels("models-providers"),
)

SYNC_WAIT_S = 1.0
"""How long a principal's read after its own write waits for the replicas."""
SERVICES_REFRESH_S = 5.0
"""How often the live instances behind `/status` are asked again (nats.micro stats)."""
PRESENCE_TTL_S = 45.0  # the `presence` bucket's max age (aisopod.state)
SESSIONS_IDLE_S = 300.0
"""How long the `sessions` replica outlives the last `/status` read that used it."""
WRITERS_TRACKED = 4096
"""Principals remembered as "wrote here, read not yet synced"; past it the oldest is
forgotten and, to keep the promise, every principal's next read of each replica syncs
(until one sync has covered it)."""


class HttpEdgeReads:
    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.agents: KvReplica | None = None
        self.models: KvReplica | None = None
        self.presence: KvReplica | None = None
        self.instances: list[Instance] | None = None
        # Writers whose next edge reads must first catch up: principal → (the write's
        # sequence here, the replicas not caught up since). `_everyone`: the same for all,
        # once a writer was forgotten past WRITERS_TRACKED.
        self._writes = 0
        self._unsynced: OrderedDict[str, tuple[int, frozenset[str]]] = OrderedDict()
        self._everyone: tuple[int, frozenset[str]] | None = None
        self._agent_ids: tuple[tuple[int, str], list[str] | None] | None = None
        self._discoveries: tuple[int, dict[str, ProviderDiscovery]] = (-1, {})
        # The last provider list built: (the providers it was for, the replica's revision,
        # the list, until when it holds in epoch ms).
        self._listed: tuple[Sequence[ProviderConfig], int, list[ModelInfo], int] | None = None
        self._task: asyncio.Task[None] | None = None
        # The `sessions` replica runs only while `/status` reads it (`_sessions_replica`).
        self._sessions_kv: KeyValue | None = None
        self.sessions_demand: OnDemand[KvReplica] = OnDemand(
            "sessions", self._start_sessions, _stop_replica, idle_s=SESSIONS_IDLE_S
        )

    async def start(self) -> None:
        host = self.host
        self.agents = KvReplica("agents", await host.kv("agents"), AGENT_KEY_PREFIX)
        self.models = KvReplica("models", await host.kv("models"), MODELS_KEY_PREFIX)
        self._sessions_kv = await host.kv("sessions")
        self.presence = KvReplica(
            "presence", await host.kv("presence"), "", keep_values=False, ttl_s=PRESENCE_TTL_S
        )
        for replica in self._replicas():
            await replica.start()
        self._task = asyncio.create_task(self._follow_services(), name="edge-services")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.sessions_demand.close()
        for replica in self._replicas():
            await replica.stop()

    @property
    def sessions(self) -> KvReplica | None:
        return self.sessions_demand.part

    def _sessions_replica(self) -> KvReplica | None:
        """The `sessions` replica for a `/status` read (keys only, counted: one entry per
        session ever used). Started by the first read that needs it, which the owner
        answers while it warms up, and dropped `SESSIONS_IDLE_S` after the last one
        (aisopod.ondemand): every agent turn writes its session twice, and a replica kept
        for good received both deliveries of every turn, whoever started it, for a count
        that only `/status` reads (~0.3 ms of this process's CPU per `/v1` turn;
        docs/http-api.md)."""
        if self._sessions_kv is None:
            return None
        return self.sessions_demand.use()

    async def _start_sessions(self) -> KvReplica:
        assert self._sessions_kv is not None
        replica = KvReplica("sessions", self._sessions_kv, "", keep_values=False)
        await replica.start()
        return replica

    def _replicas(self) -> list[KvReplica]:
        replicas = (self.agents, self.models, self.sessions, self.presence)
        return [r for r in replicas if r is not None]

    # -- read-your-writes -----------------------------------------------------------------
    def wrote(self, principal_id: str) -> None:
        """A request of `principal_id` that may have written has ended."""
        self._writes += 1
        self._mark(principal_id, frozenset(r.name for r in self._replicas()))

    def _owner_answers(self, principal_id: str, cold: frozenset[str]) -> None:
        """The owner answers this read while these replicas warm up; its answer may be
        newer than what they hold yet, so this principal's next edge reads of them first
        catch up (monotonic reads)."""
        self._mark(principal_id, cold)

    def _mark(self, principal_id: str, names: frozenset[str]) -> None:
        """This principal's next edge reads of `names` first catch up with their buckets."""
        mark = self._unsynced.get(principal_id)
        if mark is not None:
            names |= mark[1]
        self._unsynced[principal_id] = (self._writes, names)
        self._unsynced.move_to_end(principal_id)
        if len(self._unsynced) > WRITERS_TRACKED:
            _, (_, forgotten) = self._unsynced.popitem(last=False)
            owed = self._everyone[1] if self._everyone is not None else frozenset()
            self._everyone = (self._writes, owed | forgotten)

    async def _synced(self, principal_id: str, replicas: list[Replica]) -> bool:
        """Whether the replicas may answer this principal now: after catching up with the
        writes it made here (or anyone's, once a writer was forgotten). False: the owner."""
        names = frozenset(r.name for r in replicas)
        mark, everyone = self._unsynced.get(principal_id), self._everyone
        due = (mark[1] if mark else frozenset()) | (everyone[1] if everyone else frozenset())
        due &= names
        if not due:
            return True
        started = self._writes
        if not await catch_up([r for r in replicas if r.name in due], SYNC_WAIT_S):
            return False
        # Everything written before `started` is applied now; later writes keep their mark.
        mark = self._unsynced.get(principal_id)
        if mark is not None and mark[0] <= started:
            if left := mark[1] - due:
                self._unsynced[principal_id] = (mark[0], left)
            else:
                del self._unsynced[principal_id]
        everyone = self._everyone
        if everyone is not None and everyone[0] <= started:
            left = everyone[1] - due
            self._everyone = (everyone[0], left) if left else None
        return True

    # -- GET /v1/models -------------------------------------------------------------------
    async def agent_ids(self, principal_id: str, default_id: str) -> list[str] | None:
        """The agents as `agents.list` lists them (default first), or None: ask the owner."""
        ids = await self._agent_ids_of(principal_id, default_id)
        (_MODELS_FALLBACK if ids is None else _MODELS_READ).inc()
        return ids

    async def _agent_ids_of(self, principal_id: str, default_id: str) -> list[str] | None:
        agents = self.agents
        if agents is None or not agents.warm:
            self._owner_answers(principal_id, frozenset({"agents"}))
            return None
        if not await self._synced(principal_id, [agents]):
            return None
        key = (agents.revision, default_id)
        if self._agent_ids is not None and self._agent_ids[0] == key:
            return self._agent_ids[1]
        try:
            listed = agents_list_result(
                (Agent.model_validate(codec.loads(v)) for v in agents.entries.values()),
                default_id,
            )
        except Exception:  # an entry the shared builder rejects: the owner decides
            log.warning("edge agents list failed; asking the owner", exc_info=True)
            return None
        ids = None if listed is None else [a.id for a in listed.agents]
        self._agent_ids = (key, ids)
        return ids

    async def provider_models(
        self, principal_id: str, providers: Sequence[ProviderConfig]
    ) -> list[ModelInfo] | None:
        """`models.list` as the owner lists it, from the configuration and the stored
        discoveries; None while a discovering provider has none current (ask the owner)."""
        listed = await self._provider_models_of(principal_id, providers)
        (_LIST_FALLBACK if listed is None else _LIST_READ).inc()
        return listed

    async def _provider_models_of(
        self, principal_id: str, providers: Sequence[ProviderConfig]
    ) -> list[ModelInfo] | None:
        models = self.models
        if models is None or not models.warm:
            self._owner_answers(principal_id, frozenset({"models"}))
            return None
        if not await self._synced(principal_id, [models]):
            return None
        now_ms = int(time.time() * 1000)
        kept = self._listed
        fresh = kept is not None and kept[1] == models.revision and now_ms < kept[3]
        if kept is not None and fresh and kept[0] is providers:
            return kept[2]
        try:
            built = stored_models_list(providers, self.discoveries(), now_ms)
        except Exception:  # an entry the shared builder rejects: the owner decides
            log.warning("edge models list failed; asking the owner", exc_info=True)
            return None
        if built is None:
            return None
        self._listed = (providers, models.revision, built[0], built[1])
        return built[0]

    def discoveries(self) -> dict[str, ProviderDiscovery]:
        """The stored discoveries by provider id, parsed once per replica revision (empty
        while the replica is cold)."""
        models = self.models
        if models is None or not models.warm:
            return {}
        if self._discoveries[0] != models.revision:
            parsed: dict[str, ProviderDiscovery] = {}
            for value in models.entries.values():
                try:
                    entry = ProviderDiscovery.model_validate(codec.loads(value))
                except ValueError:
                    continue
                parsed[entry.provider_id] = entry
            self._discoveries = (models.revision, parsed)
        return self._discoveries[1]

    def discoveries_version(self) -> int:
        models = self.models
        return models.revision if models is not None and models.warm else -1

    def discovered_ids(self, provider: ProviderConfig) -> tuple[str, ...]:
        """What the provider's upstream last listed for these settings, expired or not
        (the proxy may route it: the runtime refreshes it before long)."""
        entry = self.discoveries().get(provider.id)
        if entry is None or entry.fingerprint != provider_fingerprint(provider):
            return ()
        return tuple(m.id for m in entry.models)

    # -- GET /status ----------------------------------------------------------------------
    async def status(
        self, principal_id: str | None, usage: Callable[[], Awaitable[UsageSummary]]
    ) -> bytes | None:
        """`status` encoded as the owner's result for a caller without admin (None: an
        admin, whose internals only the owner gathers); None: ask the owner. `usage`: the
        last 30 days' usage, which no replica holds (the owner's `usage.status`)."""
        body = None if principal_id is None else await self._status_of(principal_id, usage)
        (_STATUS_FALLBACK if body is None else _STATUS_READ).inc()
        return body

    async def _status_of(
        self, principal_id: str, usage: Callable[[], Awaitable[UsageSummary]]
    ) -> bytes | None:
        sessions = self._sessions_replica()
        replicas: list[Replica] = [
            r for r in (self.agents, sessions, self.presence) if r is not None
        ]
        instances = self.instances
        cold = frozenset(r.name for r in replicas if not r.warm)
        if sessions is None:  # starting: the first read of a stopped replica
            cold |= {"sessions"}
        if cold:
            self._owner_answers(principal_id, cold)
            return None
        if instances is None:
            return None
        if not await self._synced(principal_id, replicas):
            return None
        assert self.agents is not None and sessions is not None
        assert self.presence is not None
        try:
            summary = await usage()
        except Exception as exc:  # the owner answers (or says what is wrong)
            log.warning("usage for /status failed: %s", type(exc).__name__)
            return None
        result = status_result(
            instances,
            connections=self.presence.live_count(),
            agents=len(self.agents.entries),
            sessions=len(sessions.entries),
            now_ms=int(time.time() * 1000),
            usage=summary,
        )
        return codec.dumps(codec.to_wire(result))

    async def _follow_services(self) -> None:
        while True:
            try:
                self.instances = await service_stats(self.host.bus)
            except Exception as exc:  # NATS down: no list, so /status asks the owner
                self.instances = None
                log.warning("service discovery for /status failed: %s", type(exc).__name__)
            await asyncio.sleep(SERVICES_REFRESH_S)


async def _stop_replica(replica: KvReplica) -> None:
    await replica.stop()
