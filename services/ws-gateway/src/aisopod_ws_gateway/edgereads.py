"""Reads at the edge: read methods whose state is in KV, answered from in-memory replicas
(docs/ws-gateway.md, Reads at the edge).

The dispatcher asks `answer` after its scope check; None means "forward to the owner" (the
method is not edge-served, the replica it needs is not warm or over its bound, or the
result needs something only the owner has). Results are built by the owner's own pure
functions (`aisopod.listings`) and encoded as the owner encodes them, once per replica
revision. The encoded body is also kept per (method, params) with the revisions it was
built at: a repeated read of unchanged state skips params validation and the builder, and
costs a dictionary look-up and a splice, about what `health` costs.

The `sessions` index runs only while something uses it (aisopod.ondemand, the rule
http-api's `/status` replica follows): a `sessions.list` or OpenClaw `health` read starts it
and is answered by the owner while it warms, an OpenClaw client in the `sessions.changed`
feed holds it, and it stops `SESSIONS_IDLE_S` after the last use. Every agent turn writes
its session twice; a replica that nobody reads no longer receives both deliveries.

Read-your-writes per connection: after a write forwarded on a connection completes
(`forwarded`), the next edge read of each replicated bucket on that connection first asks
the bucket's newest sequence and waits (at most `SYNC_WAIT_S`) for the replica to apply
it; past that it goes to the owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aisopod import codec
from aisopod.catalogue.agents import Agent
from aisopod.catalogue.cron import CronListParams
from aisopod.catalogue.models import ModelsListResult
from aisopod.catalogue.sessions import SessionsListParams
from aisopod.catalogue.spec import MethodSpec
from aisopod.errors import AisopodError
from aisopod.jsonrpc import Call
from aisopod.listings import (
    AGENT_KEY_PREFIX,
    CRON_JOB_KEY_PREFIX,
    MODELS_KEY_PREFIX,
    JobRecord,
    ProviderDiscovery,
    agents_list_result,
    config_get_result,
    config_schema_result,
    cron_list_result,
    stored_models_list,
)
from aisopod.ondemand import OnDemand
from aisopod.replica import ConfigReplica, KvReplica, Replica, catch_up
from aisopod.scopes import Requirement
from aisopod_ws_gateway import metrics
from aisopod_ws_gateway.dispatch import Outcome, Reply, error_reply
from aisopod_ws_gateway.methods import validated_params
from aisopod_ws_gateway.sessionindex import SessionIndex

if TYPE_CHECKING:
    from aisopod_ws_gateway.codec import Codec
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.edgereads")

SYNC_WAIT_S = 1.0
"""How long a read after a write on the same connection waits for the replica."""

SESSIONS_IDLE_S = 300.0
"""How long the `sessions` index outlives its last read (or its last feed client)."""
FEED_WARM_WAIT_S = 10.0
"""How long joining the `sessions.changed` feed waits for the index to warm up."""

MAX_KEPT_REPLIES = 256
"""Encoded replies kept per (method, params); past it the memo starts over."""
_SCALARS = frozenset({str, int, float, bool, type(None)})

Build = Callable[[Any], bytes | None]
"""Params → the owner-shaped reply body `{"result": …}`, or None to ask the owner."""


@dataclass(frozen=True, slots=True)
class Reader:
    buckets: tuple[str, ...]
    build: Build
    clocked: frozenset[str] = frozenset()
    """Params that make the answer depend on the time (never kept in the memo)."""
    usable: Callable[[], bool] | None = None
    """More than warm replicas: whether the edge may answer now (checked before the memo)."""


class EdgeReads:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.replicas: dict[str, Replica] = {}
        self._kv: list[KvReplica] = []
        self._cache: dict[tuple[Any, ...], bytes] = {}
        # (method, params key) → (the state it was built at, the encoded body)
        self._replies: dict[tuple[str, tuple[Any, ...]], tuple[tuple[Any, ...], bytes]] = {}
        self.sessions: SessionIndex | None = None  # also OpenClaw's health and feed
        self.sessions_demand: OnDemand[SessionIndex] = OnDemand(
            "sessions", self._start_sessions, SessionIndex.stop, idle_s=SESSIONS_IDLE_S
        )
        self._agents_value: tuple[tuple[int, int], dict[str, Any] | None] = ((-1, -1), None)
        self.readers: dict[str, Reader] = {
            "config.get": Reader(("config",), self._config_get),
            "config.schema": Reader((), self._config_schema),
            "agents.list": Reader(("config", "agents"), self._agents_list),
            "cron.list": Reader(("cron",), self._cron_list),
            "models.list": Reader(("config", "models"), self._models_list),
            "sessions.list": Reader(
                ("sessions",),
                self._sessions_list,
                clocked=frozenset({"activeMinutes"}),
                # Within the listing cap (a live setting: lowering it must not leave
                # replies kept from before answering here).
                usable=lambda: self.sessions is not None and self.sessions.listing,
            ),
        }
        # Until when the last models.list built holds (the earliest expiry of the stored
        # discoveries it used), in epoch ms: past it, the memo no longer matches.
        self._models_until_ms = 0

    async def start(self) -> None:
        host = self.gateway.host
        self.replicas["config"] = ConfigReplica(host.config)
        for name, prefix in (
            ("agents", AGENT_KEY_PREFIX),
            ("cron", CRON_JOB_KEY_PREFIX),
            ("models", MODELS_KEY_PREFIX),
        ):
            replica = KvReplica(name, await host.kv(name), prefix)
            await replica.start()
            self._kv.append(replica)
            self.replicas[name] = replica
        self.sessions = SessionIndex(
            await host.kv("sessions"),
            listed_max=lambda: self.gateway.config.sessions_listed_max,
        )
        self.replicas["sessions"] = self.sessions  # cold until a use starts it

    async def stop(self) -> None:
        await self.sessions_demand.close()
        for replica in self._kv:
            await replica.stop()

    async def _start_sessions(self) -> SessionIndex:
        assert self.sessions is not None
        await self.sessions.start()
        return self.sessions

    def use_sessions(self) -> None:
        """A read of the `sessions` index: starts it (cold meanwhile) or keeps it."""
        self.sessions_demand.use()

    async def join_sessions_feed(self, conn_id: str) -> bool:
        """Hold the index for a `sessions.changed` client and wait until it is warm (every
        change after that is announced); False when it did not warm up in time."""
        self.sessions_demand.hold(conn_id)
        sessions = await self.sessions_demand.ready()
        return await sessions.wait_for(0, FEED_WARM_WAIT_S)

    def release(self, conn_id: str) -> None:
        self.sessions_demand.release(conn_id)

    def agents_value(self) -> tuple[Any, dict[str, Any]] | None:
        """`agents.list`'s answer as wire data with a number naming its version, or None
        when the replica cannot tell (cold, or the default agent not stored yet)."""
        agents = self.replicas.get("agents")
        if not isinstance(agents, KvReplica) or not agents.warm:
            return None
        snapshot = self.gateway.host.config.snapshot
        version = (agents.revision, snapshot.revision)
        if self._agents_value[0] != version:
            listed = agents_list_result(
                (Agent.model_validate(codec.loads(v)) for v in agents.entries.values()),
                snapshot.config.models.agents.default_id,
            )
            self._agents_value = (version, codec.to_wire(listed) if listed else None)
        value = self._agents_value[1]
        return None if value is None else (version, value)

    def buckets_of(self, *methods: str) -> frozenset[str]:
        """The KV buckets the edge reads of these methods follow."""
        return frozenset(b for m in methods for b in self.readers[m].buckets)

    # -- the dispatcher's hooks -------------------------------------------------------
    def answer(self, conn: Connection, call: Call, spec: MethodSpec, wire: Codec) -> Outcome | None:
        """The reply from the replicas, or None to forward the call to the owner."""
        reader = self.readers.get(spec.name)
        if reader is None or call.notification:
            return None
        if "sessions" in reader.buckets:
            self.use_sessions()
        replicas = [self.replicas.get(b) for b in reader.buckets]
        if not all(r is not None and r.warm for r in replicas) or (
            reader.usable is not None and not reader.usable()
        ):
            # The owner's answer may be newer than what a replica warming up holds: this
            # connection's next edge read first catches up (monotonic reads).
            conn.edge_unsynced = conn.edge_unsynced | frozenset(reader.buckets)
            metrics.EDGE_FALLBACKS.inc()
            return None
        pending = conn.edge_unsynced
        synced = not (pending and any(b in pending for b in reader.buckets))
        memo = _params_key(call.params, reader.clocked)
        if synced and memo is not None:
            kept = self._replies.get((spec.name, memo))
            if kept is not None and kept[0] == self._state(reader):
                frame = wire.splice(call.id, kept[1])
                if frame is not None:
                    metrics.EDGE_READS.inc()
                    return frame, None
        try:
            params = validated_params(spec, call)
        except AisopodError as exc:
            return error_reply(wire, call.id, exc)
        if not synced:
            return self._after_sync(conn, call, spec, reader, params, wire)
        reply = self._reply(call, spec, reader, params, wire)
        if reply is None:
            metrics.EDGE_FALLBACKS.inc()
        return reply

    def forwarded(
        self, conn: Connection, requirement: Requirement, work: Awaitable[Reply | None]
    ) -> Awaitable[Reply | None]:
        """Wrap a call forwarded to its owner: once a call that may write finishes, this
        connection's next edge reads first catch up with the buckets."""
        if requirement is Requirement.READ:
            return work
        return self._mark_written(conn, work)

    # -- internals --------------------------------------------------------------------
    async def _mark_written(self, conn: Connection, work: Awaitable[Reply | None]) -> Reply | None:
        try:
            return await work
        finally:
            # Even a failed write may have written: the next read syncs either way.
            conn.edge_unsynced = frozenset(self.replicas)

    async def _after_sync(
        self,
        conn: Connection,
        call: Call,
        spec: MethodSpec,
        reader: Reader,
        params: Any,
        wire: Codec,
    ) -> Reply | None:
        for name in reader.buckets:
            if name not in conn.edge_unsynced:
                continue
            if not await catch_up((self.replicas[name],), SYNC_WAIT_S):
                metrics.EDGE_FALLBACKS.inc()
                return await self.gateway.dispatcher.forward(conn, call, spec, wire)
            conn.edge_unsynced = conn.edge_unsynced - {name}
        reply = self._reply(call, spec, reader, params, wire)
        if reply is None:
            metrics.EDGE_FALLBACKS.inc()
            return await self.gateway.dispatcher.forward(conn, call, spec, wire)
        return reply

    def _reply(
        self, call: Call, spec: MethodSpec, reader: Reader, params: Any, wire: Codec
    ) -> Reply | None:
        state = self._state(reader)  # before the build: a later change must not match it
        try:
            body = reader.build(params)
        except Exception:  # a stored entry the shared builder rejects: the owner decides
            log.warning("edge read failed; asking the owner", exc_info=True)
            return None
        if body is None:
            return None
        frame = wire.splice(call.id, body)
        if frame is None:
            return None
        memo = _params_key(call.params, reader.clocked)
        if memo is not None:
            if len(self._replies) >= MAX_KEPT_REPLIES:
                self._replies.clear()
            self._replies[spec.name, memo] = (state, body)
        metrics.EDGE_READS.inc()
        return frame, None

    def _state(self, reader: Reader) -> tuple[Any, ...]:
        """What a reader's answer depends on: its replicas' revisions (and the config's
        hash, which a file-backed configuration changes without a KV revision)."""
        state = tuple(self.replicas[b].revision for b in reader.buckets)
        if "models" in reader.buckets:  # stored discoveries expire by time, not by revision
            state = (*state, time.time() * 1000 < self._models_until_ms)
        if "config" in reader.buckets:
            return (*state, self.gateway.host.config.snapshot.hash)
        return state

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> bytes:
        body = self._cache.get(key)
        if body is None:
            # One entry per method variant: a newer revision replaces the older one.
            stale = [k for k in self._cache if k[0] == key[0] and k[1:2] == key[1:2]]
            for k in stale:
                del self._cache[k]
            body = codec.dumps({"result": codec.to_wire(make())})
            self._cache[key] = body
        return body

    def _config_get(self, _: Any) -> bytes:
        snapshot = self.gateway.host.config.snapshot
        return self._cached(
            ("config.get", None, snapshot.revision, snapshot.hash),
            lambda: config_get_result(snapshot),
        )

    def _config_schema(self, _: Any) -> bytes:
        return self._cached(("config.schema", None), config_schema_result)

    def _agents_list(self, _: Any) -> bytes | None:
        agents = self.replicas["agents"]
        assert isinstance(agents, KvReplica)
        snapshot = self.gateway.host.config.snapshot
        key = ("agents.list", None, agents.revision, snapshot.revision)
        if key in self._cache:
            return self._cache[key]
        default_id = snapshot.config.models.agents.default_id
        listed = agents_list_result(
            (Agent.model_validate(codec.loads(v)) for v in agents.entries.values()), default_id
        )
        if listed is None:  # the owner creates the default agent on first use
            return None
        return self._cached(key, lambda: listed)

    def _cron_list(self, params: CronListParams) -> bytes:
        cron = self.replicas["cron"]
        assert isinstance(cron, KvReplica)
        return self._cached(
            ("cron.list", params.include_disabled, cron.revision),
            lambda: cron_list_result(
                (JobRecord.model_validate(codec.loads(v)) for v in cron.entries.values()),
                params.include_disabled,
            ),
        )

    def _models_list(self, _: Any) -> bytes | None:
        """From the configuration and the runtime's stored discoveries (KV `models`); None
        while a discovering provider has no current one (the owner discovers and stores)."""
        snapshot = self.gateway.host.config.snapshot
        models = self.replicas["models"]
        assert isinstance(models, KvReplica)
        key = ("models.list", None, snapshot.revision, snapshot.hash, models.revision)
        now_ms = int(time.time() * 1000)
        body = self._cache.get(key)
        if body is not None and now_ms < self._models_until_ms:
            return body
        stored = {
            entry.provider_id: entry
            for entry in (
                ProviderDiscovery.model_validate(codec.loads(v)) for v in models.entries.values()
            )
        }
        built = stored_models_list(list(snapshot.config.models.providers), stored, now_ms)
        if built is None:
            return None
        listed, self._models_until_ms = built
        self._cache.pop(key, None)
        return self._cached(key, lambda: ModelsListResult(models=listed))

    def _sessions_list(self, params: SessionsListParams) -> bytes | None:
        sessions = self.sessions
        if sessions is None:
            return None
        return sessions.list_body(params, int(time.time() * 1000))


def _params_key(raw: Any, clocked: frozenset[str] = frozenset()) -> tuple[Any, ...] | None:
    """A hashable key for params made of scalars (None when they are anything else, or
    name a `clocked` param: those are validated and built every time). The value's type is
    part of the key, so `1` and `true` never share an answer."""
    if raw is None:
        return ()
    if type(raw) is not dict or len(raw) > 8:
        return None
    key: list[tuple[str, type, Any]] = []
    for name, value in raw.items():
        kind = type(value)
        if kind not in _SCALARS or name in clocked:
            return None
        key.append((name, kind, value))
    return tuple(key)
