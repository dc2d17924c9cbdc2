"""One client connection after the upgrade: handshake state, identity, limits, send policy.

The connection owns what is per client: its principal and view of events, its request
token bucket, consecutive-FORBIDDEN count, in-flight request tasks, and the send policy
(docs/protocol/websocket.md, backpressure): the transport's write buffer is the bounded send queue;
droppable events are skipped once a client falls behind, anything else that would overflow
`maxBufferedBytes` closes it with 1008 `slow consumer`. Nothing here awaits a socket.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from aisopod import jsonrpc
from aisopod.errors import AisopodError, Forbidden, InternalError, InvalidRequest
from aisopod.jsonrpc import Decoded
from aisopod.principal import Principal
from aisopod.requester import encode_headers
from aisopod_ws_gateway import metrics
from aisopod_ws_gateway.audience import Subscription, View
from aisopod_ws_gateway.compat_websockets import set_max_message_size
from aisopod_ws_gateway.ratebucket import TokenBucket

if TYPE_CHECKING:
    from aisopod.config.sections.gateway import GatewaySection
    from aisopod_ws_gateway.codec import Codec
    from aisopod_ws_gateway.transport import WsTransport

log = logging.getLogger("aisopod.ws")

# A client whose unsent data exceeds this share of maxBufferedBytes is "behind": droppable
# events (tick, presence, chat deltas) are skipped for it until it catches up.
BEHIND_SHARE = 8


FrameHandler = Callable[["Connection", Decoded], None]


class FirstFrame(Protocol):
    def first_frame(self, conn: Connection, decoded: Decoded) -> None: ...


class ConnectionHost(Protocol):
    """What a connection uses of its gateway (service.Gateway is one)."""

    @property
    def handshake(self) -> FirstFrame: ...

    @property
    def config(self) -> GatewaySection: ...

    @property
    def max_buffered_bytes(self) -> int: ...

    def connection_closed(self, conn: Connection, was_open: bool) -> None: ...


class State(Enum):
    PENDING = 1  # upgraded, waiting for `connect`
    VERIFYING = 2  # `connect` received, hello not sent yet
    OPEN = 3  # hello sent
    CLOSED = 4


class Connection:
    __slots__ = (
        "bearer",
        "bucket",
        "client",
        "codec",
        "conn_id",
        "device_id",
        "edge_unsynced",
        "forbidden_streak",
        "forwarded_host",
        "gateway",
        "host_header",
        "ip",
        "last_seq",
        "nats_header_block",
        "node_id",
        "nonce",
        "on_frame",
        "ordered",
        "origin",
        "principal",
        "replay_buffer",
        "since_ms",
        "state",
        "tasks",
        "timer",
        "transport",
        "view",
    )

    def __init__(
        self,
        gateway: ConnectionHost,
        transport: WsTransport,
        codec: Codec,
        on_frame: FrameHandler,
        *,
        ip: str,
        origin: str | None,
        host_header: str | None,
        forwarded_host: str | None,
        bearer: str | None,
    ) -> None:
        self.gateway = gateway
        self.transport = transport
        self.codec = codec
        self.on_frame = on_frame  # requests after hello: the dispatcher or the adapters
        self.conn_id = secrets.token_hex(12)
        self.nonce = secrets.token_urlsafe(18)
        self.ip = ip
        self.origin = origin
        self.host_header = host_header
        self.forwarded_host = forwarded_host
        self.bearer = bearer
        self.state = State.PENDING
        self.since_ms = int(time.time() * 1000)
        self.principal: Principal | None = None
        self.nats_header_block: bytes | None = None  # the principal's headers, encoded once
        self.view: View | None = None
        self.client: dict[str, Any] = {}
        self.device_id: str | None = None
        self.node_id: str | None = None
        self.bucket: TokenBucket | None = None
        self.forbidden_streak = 0
        self.tasks: set[asyncio.Task[None]] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.replay_buffer: list[tuple[int, bytes, bool]] | None = None
        self.last_seq = 0
        # Replicated buckets this connection wrote to since its last edge read of them.
        self.edge_unsynced: frozenset[str] = frozenset()
        # Admitted without a NATS round trip: the one started with its 101, which `connect`
        # waits for before it trusts the credential cache (credentials.py, `order`).
        self.ordered: asyncio.Future[Any] | None = None

    @property
    def subscription(self) -> Subscription:
        return self.view.subscription if self.view is not None else Subscription()

    # -- inbound ------------------------------------------------------------------------
    def received(self, data: bytes) -> None:
        metrics.FRAMES_IN.inc()
        decoded = self.codec.decode(data)
        if self.state is State.PENDING:
            self.gateway.handshake.first_frame(self, decoded)
        elif self.state is State.OPEN:
            self.on_frame(self, decoded)
        elif self.state is State.VERIFYING:
            for item in decoded.items:
                if not getattr(item, "notification", False):
                    self.reply_error(
                        getattr(item, "id", None),
                        InvalidRequest("the handshake is in progress", code="HANDSHAKE_PENDING"),
                    )

    def spawn(self, work: Awaitable[None]) -> None:
        """Run a request's work as a task tracked for drain and cancelled on close."""
        task = asyncio.ensure_future(work)
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        tasks = self.tasks
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self.tasks = None  # an idle connection keeps no empty set (the handshake's)
        if not task.cancelled() and task.exception() is not None:
            log.error("request task failed", exc_info=task.exception())

    @property
    def in_flight(self) -> int:
        return len(self.tasks) if self.tasks else 0

    # -- replies ------------------------------------------------------------------------
    def send_payload(self, payload: bytes) -> None:
        """A response or addressed frame: never dropped; overflow closes the client."""
        if self.state is State.CLOSED:
            return
        if self.transport.buffered + len(payload) > self.gateway.max_buffered_bytes:
            self.close(1008, "slow consumer")
            metrics.SLOW_CONSUMERS.inc()
            return
        self.transport.send_text(payload)
        metrics.FRAMES_OUT.inc()

    def reply_error(self, request_id: jsonrpc.RequestId, error: AisopodError) -> None:
        self.send_payload(self.codec.error(request_id, error))
        self.count_reply(error)

    def count_reply(self, error: AisopodError | None) -> None:
        """Track consecutive FORBIDDEN replies; past the limit the socket closes (1008)."""
        if isinstance(error, Forbidden):
            self.forbidden_streak += 1
            if self.forbidden_streak > self.gateway.config.max_consecutive_forbidden:
                self.close(1008, "too many forbidden requests")
        else:
            self.forbidden_streak = 0

    def notify(self, method: str, params: Any) -> None:
        payload = self.codec.notification(method, params)
        if payload is not None:
            self.send_payload(payload)

    # -- events -------------------------------------------------------------------------
    def deliver(self, seq: int, frame: bytes, droppable: bool) -> None:
        """A broadcast event frame (already WebSocket-framed, shared by every client)."""
        if self.replay_buffer is not None:
            # Resuming: live events wait until the replay is sent (no loss, no dupes).
            self.replay_buffer.append((seq, frame, droppable))
            if len(self.replay_buffer) > self.gateway.config.replay_max_events + 10_000:
                self.close(1008, "slow consumer")
            return
        if seq <= self.last_seq:
            return
        self.write_event(seq, frame, droppable)

    def write_event(self, seq: int, frame: bytes, droppable: bool) -> None:
        if self.state is not State.OPEN:
            return
        transport = self.transport
        buffered = transport.buffered
        limit = self.gateway.max_buffered_bytes
        if droppable and buffered > limit // BEHIND_SHARE:
            metrics.EVENTS_DROPPED.inc()
            return
        if buffered + len(frame) > limit:
            metrics.SLOW_CONSUMERS.inc()
            self.close(1008, "slow consumer")
            return
        if seq:
            self.last_seq = seq
        transport.write_frame(frame)

    def begin_replay(self) -> None:
        self.replay_buffer = []

    def end_replay(self, replayed_up_to: int) -> None:
        """Send the live events that arrived during the replay and are newer than it."""
        buffered, self.replay_buffer = self.replay_buffer or [], None
        self.last_seq = max(self.last_seq, replayed_up_to)
        for seq, frame, droppable in buffered:
            if seq > self.last_seq:
                self.write_event(seq, frame, droppable)

    # -- lifecycle ----------------------------------------------------------------------
    def open(self, principal: Principal, view: View) -> None:
        cfg = self.gateway.config
        self.principal = principal
        self.nats_header_block = encode_headers(principal.to_headers())
        self.view = view
        # What only the handshake reads (docs/ws-gateway.md, memory per connection).
        self.bearer = None  # spent
        self.nonce = ""
        self.origin = self.host_header = self.forwarded_host = None
        self.bucket = TokenBucket(cfg.requests_per_second, cfg.request_burst, time.monotonic())
        set_max_message_size(self.transport.ws, cfg.max_payload)
        self.state = State.OPEN
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self, code: int, reason: str = "") -> None:
        if self.state is State.CLOSED:
            return
        self.transport.close(code, reason)

    def fail_handshake(self, request_id: jsonrpc.RequestId, error: AisopodError, code: int) -> None:
        self.send_payload(self.codec.error(request_id, error))
        self.close(code, error.message if code != 1008 else _close_reason(error))

    def closed(self, code: int) -> None:
        """The socket is gone (called once by the transport)."""
        if self.state is State.CLOSED:
            return
        was_open = self.state is State.OPEN
        self.state = State.CLOSED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.tasks:
            for task in list(self.tasks):
                task.cancel()
        self.gateway.connection_closed(self, was_open)


def _close_reason(error: AisopodError) -> str:
    if isinstance(error, InvalidRequest | InternalError):
        return error.message
    return error.detail_code.lower().replace("_", " ")
