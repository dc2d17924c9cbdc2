"""The ws-gateway of one process: sockets, connections, and the parts that serve them.

Owns the registry of connections (`conns`: connId → Connection, from registration until
close) and the timers shared by all sockets (ping, tick), wires handshake, dispatch,
fan-out, presence, nodes and health together, and drains on SIGTERM (docs/protocol/websocket.md,
Shutdown): stop accepting, `shutdown` to every client, in-flight requests finish (≤ drain
timeout), then 1012 `service restart`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from nats.aio.msg import Msg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field, ValidationError
from websockets.http11 import Request, Response

from aisopod.config.model import GatewayConfig
from aisopod.config.sections.gateway import GatewaySection
from aisopod.contracts.auth import CloseConnections
from aisopod.credcache import DEFAULT_TTL_S
from aisopod.edgeproof import HEADER as EDGE_PROOF_HEADER
from aisopod.edgeproof import EdgeProof, client_address
from aisopod.exemptcache import DEFAULT_MAX_AGE_S, ExemptCache
from aisopod.host import ServiceHost, bounded
from aisopod.hostnames import own_host_names
from aisopod.jsonrpc import RequestId
from aisopod.probes import LIVENESS_PATHS, READINESS_PATHS
from aisopod.settings import ServiceSettings
from aisopod_ws_gateway import metrics, wsframes
from aisopod_ws_gateway.admission import ConnectionLimit
from aisopod_ws_gateway.audience import Subscription, View, Views
from aisopod_ws_gateway.codec import JSONRPC, Codec
from aisopod_ws_gateway.connection import Connection, FrameHandler, State
from aisopod_ws_gateway.credentials import Verifier
from aisopod_ws_gateway.dispatch import Dispatcher
from aisopod_ws_gateway.edgereads import EdgeReads
from aisopod_ws_gateway.fanout import Fanout
from aisopod_ws_gateway.handshake import Handshake
from aisopod_ws_gateway.health import HealthMonitor
from aisopod_ws_gateway.methods import CONNECTION_ONLY, bus_handlers, connection_handlers
from aisopod_ws_gateway.nodes import Nodes
from aisopod_ws_gateway.openclaw.adapters import heartbeat_summaries
from aisopod_ws_gateway.openclaw.edgehealth import EdgeHealth
from aisopod_ws_gateway.openclaw.frames import OPENCLAW
from aisopod_ws_gateway.openclaw.handler import OpenClawMethods
from aisopod_ws_gateway.presence import Presence
from aisopod_ws_gateway.transport import WsTransport, plain

log = logging.getLogger("aisopod.ws.gateway")

SHUTDOWN_RESTART_EXPECTED_MS = 5000


class WsGatewaySettings(ServiceSettings):
    """`AISOPOD_CREDENTIAL_CACHE_TTL_S`: how long a verified credential is reused by the
    handshake (docs/ws-gateway.md, "The verified-credential cache"); 0 turns the cache off
    (every `connect` asks auth). `AISOPOD_EXEMPT_CACHE_MAX_AGE_S`: how long ratelimit's
    `exempt` verdict for an address is reused by the upgrade (aisopod/exemptcache.py); 0 turns it
    off (every upgrade asks ratelimit)."""

    credential_cache_ttl_s: float = Field(DEFAULT_TTL_S, ge=0.0, le=3600.0)
    exempt_cache_max_age_s: float = Field(DEFAULT_MAX_AGE_S, ge=0.0, le=3600.0)


class Gateway:
    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.loop = asyncio.get_event_loop()
        self.sockets: set[WsTransport] = set()
        self.conns: dict[str, Connection] = {}
        self.views = Views()
        settings = host.settings
        ttl_s = (
            settings.credential_cache_ttl_s
            if isinstance(settings, WsGatewaySettings)
            else DEFAULT_TTL_S
        )
        self.credentials = Verifier(host, ttl_s)
        exempt_max_age_s = (
            settings.exempt_cache_max_age_s
            if isinstance(settings, WsGatewaySettings)
            else DEFAULT_MAX_AGE_S
        )
        self.limit = ConnectionLimit(
            host.bus,
            lambda: host.config.snapshot.revision,
            ExemptCache(max_age_s=exempt_max_age_s),
        )
        self._heartbeats: tuple[object, Mapping[str, dict[str, Any]]] = (None, {})
        self.handshake = Handshake(self)
        self.health = HealthMonitor(self)
        self.presence = Presence(self)
        self.nodes = Nodes(self)
        self.fanout = Fanout(host.bus, self.conns, lambda: self.host.config.current.gateway)
        self.edge_reads = EdgeReads(self)
        self.dispatcher = Dispatcher(
            host.bus,
            lambda: self.host.config.current.gateway,
            host.settings,
            connection_handlers(self),
            self.edge_reads,
        )
        self.openclaw = OpenClawMethods(
            self.dispatcher,
            host.version,
            conns=self.conns,
            resubscribe=self.resubscribe,
            default_agent=lambda: self.full_config.models.agents.default_id,
            heartbeats=self.heartbeats,
        )
        # Requests after hello, by wire format.
        self.frame_handlers: dict[str, FrameHandler] = {
            JSONRPC.name: self.dispatcher.frame,
            OPENCLAW.name: self.openclaw.frame,
        }
        self.http_routes = {path: self._http_health for path in LIVENESS_PATHS}
        self.http_routes.update({path: self._http_ready for path in READINESS_PATHS})
        self.http_routes["/health/services"] = self._http_services
        self.http_routes["/metrics"] = self._http_metrics
        self._server: asyncio.Server | None = None
        self.accepting = True
        self._timers: list[asyncio.Task[None]] = []
        self._control: Any = None
        self._pending: set[asyncio.Task[None]] = set()
        self.edge_proof = EdgeProof(host.settings.secret("edge_secret"))
        # Names a browser page of the gateway itself may come from (origin.py).
        self.own_host_names = own_host_names(host.settings.public_url, host.settings.host)
        host.add_ready_check(
            "listener", lambda: self._server is not None and self._server.is_serving()
        )

    # -- configuration ------------------------------------------------------------------
    @property
    def full_config(self) -> GatewayConfig:
        return self.host.config.current

    @property
    def config(self) -> GatewaySection:
        return self.host.config.current.gateway

    @property
    def max_buffered_bytes(self) -> int:
        return self.host.config.current.gateway.max_buffered_bytes

    def pre_hello_max_size(self) -> int:
        return self.config.max_payload_pre_hello

    def heartbeats(self) -> Mapping[str, dict[str, Any]]:
        """The configured heartbeats in OpenClaw's shape, computed once per configuration
        (the same object while it lasts: `EdgeHealth` keys on it)."""
        config = self.full_config
        if self._heartbeats[0] is not config:
            self._heartbeats = (config, heartbeat_summaries(config.heartbeat))
        return self._heartbeats[1]

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.health.start()
        await self.presence.start()
        await self.fanout.start()
        await self.edge_reads.start()
        sessions = self.edge_reads.sessions
        assert sessions is not None
        sessions.on_change = self.openclaw.session_changed
        self.openclaw.edge_health = EdgeHealth(
            lambda: self.health.snapshot,
            self.edge_reads.agents_value,
            sessions,
            self.heartbeats,
            use_sessions=self.edge_reads.use_sessions,
            buckets=self.edge_reads.buckets_of("agents.list", "sessions.list"),
        )
        self.openclaw.join_sessions_feed = self.edge_reads.join_sessions_feed
        await self.credentials.start()
        # A changed configuration may exempt less: no verdict of the old one is used again.
        self.host.config.on_change(lambda _new, _old: self.limit.cache.clear())
        bus = self.host.bus
        self._control = await bus.nc.subscribe(
            bus.subjects.control("connections.close"), cb=self._on_close_order
        )
        await self.host.rpc.start(bus_handlers(self), skip=CONNECTION_ONLY)
        self._timers = [
            asyncio.create_task(self._heartbeat(), name="ws-heartbeat"),
            asyncio.create_task(self._ticks(), name="ws-tick"),
        ]
        self.host.on_drain(self.drain)

    async def listen(self, host: str, port: int) -> asyncio.Server:
        self._server = await self.loop.create_server(
            lambda: WsTransport(self), host, port, backlog=4096, reuse_address=True
        )
        return self._server

    async def stop(self) -> None:
        """Stop every part, each bounded in time: a stuck part is logged, never a hang."""
        for task in self._timers:
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        for sock in list(self.sockets):
            sock.abort()
        if self._control is not None:
            await bounded("control subscription", self._control.unsubscribe())
        await bounded("credentials", self.credentials.stop())
        await bounded("edge reads", self.edge_reads.stop())
        await bounded("fan-out", self.fanout.stop())
        await bounded("nodes", self.nodes.stop())
        await bounded("presence", self.presence.stop())
        await bounded("health", self.health.stop())

    async def drain(self) -> None:
        """SIGTERM (readiness already failing): stop accepting, tell every client, let
        in-flight requests finish within the drain timeout, then close with 1012."""
        # Upgrades are refused from now on (503), while /ready keeps answering 503 on the
        # same port so the proxy's health check sees the drain rather than a dead port.
        self.accepting = False
        shutdown = {"reason": "service restart", "restartExpectedMs": SHUTDOWN_RESTART_EXPECTED_MS}
        for conn in list(self.conns.values()):
            if conn.state is State.OPEN:
                conn.notify("shutdown", shutdown)
        deadline = self.loop.time() + self.host.settings.drain_timeout_s
        while self.loop.time() < deadline:
            tasks = {t for c in self.conns.values() if c.tasks for t in c.tasks}
            tasks |= self.nodes.tasks
            if not tasks:
                break
            await asyncio.wait(tasks, timeout=max(0.0, deadline - self.loop.time()))
        for sock in list(self.sockets):
            if sock.conn is not None:
                sock.conn.close(1012, "service restart")
            else:
                sock.abort()
        deadline = self.loop.time() + 2.0
        while self.sockets and self.loop.time() < deadline:
            await asyncio.sleep(0.05)

    # -- connections --------------------------------------------------------------------
    def proven_client_ip(self, transport: WsTransport, request: Request) -> str | None:
        """The client IP of an upgrade that carries the edge proof (X-Forwarded-For walked
        over the trusted hops), or None when it does not: then nothing of it is believed."""
        headers = request.headers
        proofs = headers.get_all(EDGE_PROOF_HEADER)
        if len(proofs) != 1 or not self.edge_proof.valid(proofs[0].encode("latin-1")):
            return None
        peer = transport.transport.get_extra_info("peername") if transport.transport else None
        peer_ip = str(peer[0]) if peer else "unknown"
        forwarded_for = ",".join(headers.get_all("X-Forwarded-For")) or None
        trusted = tuple(self.config.trusted_proxies)
        return client_address(peer_ip, forwarded_for, trusted, proven=True)

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep a per-socket task alive until it ends (the loop holds only weak refs)."""
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def open_connection(
        self, transport: WsTransport, request: Request, ip: str, codec: Codec
    ) -> Connection:
        """A connection for an upgrade already proven (`proven_client_ip`), speaking the
        wire format its upgrade path chose."""
        headers = request.headers
        authorization = headers.get("Authorization", "")
        bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        conn = Connection(
            self,
            transport,
            codec,
            self.frame_handlers[codec.name],
            ip=ip,
            origin=headers.get("Origin"),
            host_header=headers.get("Host"),
            forwarded_host=headers.get("X-Forwarded-Host"),
            bearer=bearer or None,
        )
        self.handshake.challenge(conn)
        return conn

    def register(self, conn: Connection) -> None:
        self.conns[conn.conn_id] = conn
        metrics.CONNECTIONS.set(len(self.conns))

    def connection_closed(self, conn: Connection, was_open: bool) -> None:
        if self.conns.get(conn.conn_id) is conn:
            del self.conns[conn.conn_id]
            metrics.CONNECTIONS.set(len(self.conns))
        self.fanout.release(conn.conn_id)
        self.edge_reads.release(conn.conn_id)
        if conn.node_id is not None:
            self.nodes.detach(conn)
        if was_open:
            self.presence.remove(conn)
        else:
            self.presence.abandon(conn)

    def resubscribe(self, conn: Connection, subscription: Subscription) -> dict[str, Any]:
        assert conn.view is not None
        conn.view = self.views.get(conn.view.role, conn.view.scopes, subscription)
        return subscription.wire()

    def features(self, view: View) -> dict[str, list[str]]:
        if view.features is None:
            view.features = {"methods": view.methods(), "events": view.events()}
        return view.features

    def features_json(self, view: View) -> bytes:
        """`features` as JSON, encoded once per interned view (role, scopes, subscription):
        the bulk of every hello."""
        if view.features_json is None:
            view.features_json = orjson.dumps(self.features(view))
        return view.features_json

    def health_reply(self, codec: Codec, request_id: RequestId) -> bytes:
        """`health` from the cached snapshot, spliced as bytes (no model, no re-encoding)."""
        spliced = codec.splice(request_id, b'{"result":' + self.health.encoded + b"}")
        assert spliced is not None
        return spliced

    async def _on_close_order(self, msg: Msg) -> None:
        try:
            order = CloseConnections.model_validate_json(msg.data)
        except ValidationError:
            log.warning("malformed connections.close order")
            return
        for conn in list(self.conns.values()):
            principal = conn.principal
            if principal is None:
                continue
            if order.conn_ids is not None and conn.conn_id not in order.conn_ids:
                continue
            if order.device_id is not None and principal.device_id != order.device_id:
                continue
            if order.role is not None and principal.role.value != order.role:
                continue
            if order.principal_id is not None and principal.id != order.principal_id:
                continue
            conn.close(order.code, order.reason)

    # -- timers -------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Ping every socket each interval; one silent for two intervals is dropped."""
        while True:
            interval = self.config.ping_interval_ms / 1000
            await asyncio.sleep(interval)
            silent_since = self.loop.time() - 2 * interval
            for sock in list(self.sockets):
                if sock.last_rx < silent_since:
                    sock.abort()
                else:
                    sock.ping()

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval_ms / 1000)
            now = int(time.time() * 1000)
            tick = {"ts": now}
            frames: dict[str, bytes | None] = {}  # one frame per wire format
            for conn in list(self.conns.values()):
                if conn.state is State.OPEN and conn.replay_buffer is None:
                    codec = conn.codec
                    if codec.name not in frames:
                        encoded = codec.notification("tick", tick, now)
                        frames[codec.name] = wsframes.text(encoded) if encoded else None
                    frame = frames[codec.name]
                    if frame is not None:
                        conn.write_event(0, frame, True)

    # -- HTTP on the same port ----------------------------------------------------------
    def _http_health(self, _: Request) -> Response:
        body = {
            "ok": True,
            "service": self.host.name,
            "version": self.host.version,
            "instance": self.host.instance,
        }
        return plain(200, orjson.dumps(body), "application/json")

    def _http_services(self, _: Request) -> Response:
        """The `health` snapshot over HTTP: 200 when every service answers, else 503 (the
        launcher waits for it, so a stack that says ready also says healthy)."""
        return plain(
            200 if self.health.snapshot["ok"] else 503, self.health.encoded, "application/json"
        )

    def _http_ready(self, _: Request) -> Response:
        reasons = self.host.not_ready_reasons()
        body = orjson.dumps({"ready": not reasons, "reasons": reasons})
        return plain(503 if reasons else 200, body, "application/json")

    def _http_metrics(self, _: Request) -> Response:
        return plain(200, generate_latest(), CONTENT_TYPE_LATEST)
