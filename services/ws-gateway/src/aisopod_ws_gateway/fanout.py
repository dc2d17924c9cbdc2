"""Events to clients: the replica's consumer of stream EVENTS, resume replay, and frames
addressed to one connection (`<prefix>.conn.<connId>`).

One ordered push consumer per replica, starting at the stream's tail; `seq` = the stream
sequence. It runs only while this replica holds a connection (`hold`, awaited by the
handshake before the connection is registered and its hello sent, so no event stored after
the hello is missed) and for `EVENTS_IDLE_S` after the last one closes (reconnects do not
restart it): a replica nobody is connected to receives none of the turns' events
(docs/ws-gateway.md, "What runs when"). Each event is encoded and WebSocket-framed once,
then written to every local client whose view admits it (audience rule, subscription,
session keys); `tool` agent events go only to the connection that started the run
(header `Aisopod-Origin-Conn`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from aisopod.catalogue import EVENT_AUDIENCE, audience_of
from aisopod.ondemand import OnDemand
from aisopod.principal import H_ORIGIN_CONN
from aisopod.state import stream_name
from aisopod_ws_gateway import metrics, wsframes
from aisopod_ws_gateway.audience import View

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from aisopod.bus import Bus
    from aisopod.config.sections.gateway import GatewaySection
    from aisopod_ws_gateway.codec import Codec
    from aisopod_ws_gateway.connection import Connection

log = logging.getLogger("aisopod.ws.fanout")

# Events whose payload decides who gets them or whether they may be dropped.
INSPECT = frozenset(
    {"agent.event", "chat.event"}
    | {
        name
        for name, rule in EVENT_AUDIENCE.items()
        if rule.droppable_states or rule.origin_only_streams or rule.session_subscribed_nodes
    }
)
REPLAY_MSG_TIMEOUT_S = 2.0
EVENTS_IDLE_S = 300.0
"""How long the events consumer outlives the last connection of this replica."""


class Fanout:
    def __init__(
        self, bus: Bus, conns: dict[str, Connection], config: Callable[[], GatewaySection]
    ) -> None:
        """`conns`: the live registry (connId → Connection); `config`: the current section."""
        self.bus = bus
        self.conns = conns
        self.config = config
        self._evt_prefix = bus.subjects.evt("")
        self._conn_prefix = bus.subjects.conn("")
        self._stream = stream_name(bus.subjects.prefix, "EVENTS")
        self._subs: list[Any] = []
        self.events: OnDemand[Any] = OnDemand(
            "events", self._subscribe_events, _unsubscribe, idle_s=EVENTS_IDLE_S
        )
        """The live consumer of stream EVENTS, run while connections are held."""

    async def start(self) -> None:
        bus = self.bus
        self._subs.append(await bus.nc.subscribe(self._conn_prefix + "*", cb=self._on_addressed))

    async def stop(self) -> None:
        await self.events.close()
        for sub in self._subs:
            await _unsubscribe(sub)
        self._subs.clear()

    async def hold(self, conn_id: str) -> None:
        """A connection from now until `release`: returns once the events consumer runs,
        so every event stored from then on reaches it (a resume's replay reads the stream
        after this and ends where live delivery begins)."""
        self.events.hold(conn_id)
        await self.events.ready()

    def release(self, conn_id: str) -> None:
        self.events.release(conn_id)

    async def _subscribe_events(self) -> Any:
        js: JetStreamContext = self.bus.js
        return await js.subscribe(
            self.bus.subjects.evt_all,
            stream=self._stream,
            cb=self._on_event,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            pending_msgs_limit=1_000_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )

    # -- live ---------------------------------------------------------------------------
    async def _on_event(self, msg: Msg) -> None:
        try:
            seq, ts = _seq_ts(msg)
            origin = msg.headers.get(H_ORIGIN_CONN) if msg.headers else None
            self.deliver(msg.subject[len(self._evt_prefix) :], seq, ts, msg.data, origin)
        except Exception:  # one bad event must not stop the consumer
            log.exception("event fan-out failed")

    def deliver(self, name: str, seq: int, ts: int, data: bytes, origin: str | None) -> int:
        """Write one event to every local client that may see it; returns the count."""
        metrics.EVENTS.inc()
        rule = audience_of(name)
        if rule.connection_only:
            return 0
        info = _payload_info(name, data)
        session_key = info.get("sessionKey") if info is not None else None
        droppable = rule.is_droppable(info)
        # Encoded and framed once per wire format, on first need, shared by its clients.
        frames = EventFrames(name, seq, ts, data)
        if rule.origin_only(info):
            conn = self.conns.get(origin) if origin else None
            if conn is None or not _admits(conn.view, name, session_key):
                return 0
            frame = frames.get(conn.codec)
            if frame is None:
                return 0
            conn.deliver(seq, frame, droppable)
            metrics.DELIVERIES.inc()
            return 1
        # Session rules also apply to a payload without a session key: a node that sees
        # chat.event only through its session subscriptions must not get one that names none.
        by_session = session_key is not None or rule.session_subscribed_nodes
        count = 0
        for conn in self.conns.values():
            view = conn.view
            if view is None or not view.sees(name):
                continue
            if by_session and not view.sees_session(name, session_key):
                continue
            frame = frames.get(conn.codec)
            if frame is None:
                continue
            conn.deliver(seq, frame, droppable)
            count += 1
        metrics.DELIVERIES.inc(count)
        return count

    async def _on_addressed(self, msg: Msg) -> None:
        """`{method, params}` published to `conn.<connId>`: a notification for one client."""
        conn = self.conns.get(msg.subject[len(self._conn_prefix) :])
        if conn is None or conn.view is None:
            return
        try:
            body = orjson.loads(msg.data)
            method, params = body["method"], body.get("params")
        except (ValueError, KeyError, TypeError):
            log.warning("malformed addressed frame on %s", msg.subject)
            return
        if isinstance(method, str):
            conn.notify(method, params)

    # -- resume -------------------------------------------------------------------------
    async def replay(
        self, conn: Connection, view: View, last_seq: int
    ) -> tuple[list[bytes], int, bool]:
        """The frames after `last_seq` that `view` may see, the stream sequence they reach,
        and whether there is a gap (the stream no longer holds `last_seq + 1`, or more than
        `replayMaxEvents` were missed)."""
        js = self.bus.js
        state = (await js.stream_info(self._stream)).state
        first, last = state.first_seq, state.last_seq
        if last_seq >= last:
            return [], last, last_seq > last
        if last_seq + 1 < first or last - last_seq > self.config().replay_max_events:
            return [], last, True
        frames: list[bytes] = []
        sub = await js.subscribe(
            self.bus.subjects.evt_all,
            stream=self._stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=last_seq + 1),
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=REPLAY_MSG_TIMEOUT_S)
                seq, ts = _seq_ts(msg)
                if seq > last:
                    break
                name = msg.subject[len(self._evt_prefix) :]
                if self._replayable(conn, view, name, msg):
                    encoded = conn.codec.event(name, seq, ts, msg.data)
                    if encoded is not None:
                        frames.append(wsframes.text(encoded))
                if seq == last:
                    break
        except TimeoutError:
            return [], last, True
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribe failed", exc_info=True)
        return frames, last, False

    def _replayable(self, conn: Connection, view: View, name: str, msg: Msg) -> bool:
        rule = audience_of(name)
        if rule.connection_only or not view.sees(name):
            return False
        info = _payload_info(name, msg.data)
        if rule.origin_only(info):
            origin = msg.headers.get(H_ORIGIN_CONN) if msg.headers else None
            if origin != conn.conn_id:
                return False
        session_key = info.get("sessionKey") if info is not None else None
        return view.sees_session(name, session_key)


class EventFrames:
    """One event's WebSocket frame per codec, each built on first request (None: the
    codec has no such event)."""

    __slots__ = ("_by_codec", "_data", "_name", "_seq", "_ts")

    def __init__(self, name: str, seq: int, ts: int, data: bytes) -> None:
        self._name, self._seq, self._ts, self._data = name, seq, ts, data
        self._by_codec: dict[int, bytes | None] = {}

    def get(self, codec: Codec) -> bytes | None:
        key = id(codec)
        try:
            return self._by_codec[key]
        except KeyError:
            encoded = codec.event(self._name, self._seq, self._ts, self._data)
            frame = wsframes.text(encoded) if encoded is not None else None
            self._by_codec[key] = frame
            return frame


async def _unsubscribe(sub: Any) -> None:
    try:
        await sub.unsubscribe()
    except Exception:  # closing anyway
        log.debug("unsubscribe failed", exc_info=True)


def _admits(view: View | None, name: str, session_key: str | None) -> bool:
    if view is None or not view.sees(name):
        return False
    return view.sees_session(name, session_key)


def _payload_info(name: str, data: bytes) -> dict[str, Any] | None:
    if name not in INSPECT:
        return None
    try:
        body = orjson.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _seq_ts(msg: Msg) -> tuple[int, int]:
    """Stream sequence and timestamp (ms) from the JetStream reply subject, without
    building nats-py's metadata objects for every event."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7]) // 1_000_000
    meta = msg.metadata
    return meta.sequence.stream, int(meta.timestamp.timestamp() * 1000)
