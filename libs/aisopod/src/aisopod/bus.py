"""The NATS bus: connection, RPC calls with identity headers, event publishing.

Replies are `{"result": ...}` or `{"error": {"code", "message", "data"}}`
(docs/protocol/architecture.md), so an edge forwards an owner's error unchanged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck

from aisopod import codec, requestlog, tracing
from aisopod.compat.natspy import flush_in_order
from aisopod.conformance import Nonconformance, checked_event
from aisopod.errors import AisopodError, InternalError, Unavailable
from aisopod.jsretry import DEFAULT_RETRY_S, ElectionTolerantJetStream
from aisopod.principal import H_TRACE, Principal
from aisopod.requester import Client, Requester, encode_headers
from aisopod.settings import ServiceSettings, nats_servers
from aisopod.subjects import Subjects

log = logging.getLogger("aisopod.bus")

# Waits with no side effect beside the reads: safe to receive twice.
_REPEATABLE_WAITS = frozenset({"agent.wait"})


@functools.lru_cache(maxsize=1024)
def _repeat_rule(method: str) -> Literal["always", "with-key", "never"]:
    """When a call of `method` may reach its owner twice without harm: reads and pure
    waits always; idempotent methods when the call carries a key, whose owner answers a
    repeat from the first call's result; others never."""
    from aisopod.catalogue import get_method  # the catalogue imports much; only here
    from aisopod.scopes import Requirement

    spec = get_method(method)
    if spec is None:
        return "never"
    if spec.requirement is Requirement.READ or spec.name in _REPEATABLE_WAITS:
        return "always"
    return "with-key" if spec.idempotent else "never"


def resendable(method: str, params: Any) -> bool:
    """Whether a call may be sent again when it or its reply may have been lost (a
    reconnect, ours or the owner's; Requester.resend)."""
    rule = _repeat_rule(method)
    if rule == "with-key":
        return isinstance(params, dict) and bool(params.get("idempotencyKey"))
    return rule == "always"


# How long a call asks again when nobody listens: an owner whose NATS node died is back on
# another node within a reconnect (~0.25 s), but its interest must then cross the cluster's
# routes, which took over 2 s on a loaded 2-core machine (a failover test's agent.wait got
# NO_RESPONDERS); a service that is really gone still fails UNAVAILABLE within this bound.
NO_RESPONDERS_GRACE_S = 5.0

# Published by a service whose NATS connection came back (control.>, every service's grant).
PEER_RECONNECTED = "peer.reconnected"


def encode_reply(result: Any = None, error: AisopodError | None = None) -> bytes:
    if error is not None:
        return codec.dumps({"error": error.to_wire()})
    return codec.dumps({"result": codec.to_wire(result)})


def decode_reply(data: bytes) -> Any:
    """The result of a reply, or raise the AisopodError it carries."""
    try:
        body = codec.loads(data)
    except ValueError as exc:
        raise InternalError("malformed reply from service") from exc
    if isinstance(body, dict) and "error" in body and isinstance(body["error"], dict):
        raise AisopodError.from_wire(body["error"])
    if not isinstance(body, dict) or "result" not in body:
        # e.g. a nats.micro error reply with an empty body.
        raise InternalError("malformed reply from service")
    return body["result"]


class Bus:
    """A live NATS connection with the gateway's conventions on top."""

    def __init__(
        self,
        nc: NATS,
        subjects: Subjects,
        *,
        js_retry_s: float = DEFAULT_RETRY_S,
        call_timeout_s: float = 20.0,
        validate_events: bool = False,
    ) -> None:
        self.nc = nc
        # The default wait of `call`: longer than a JetStream stall the owner rides out.
        self.call_timeout_s = call_timeout_s
        # RPC requests: one inbox subscription, leaner than nats-py's request (requester.py).
        self.requester = Requester(nc)
        # Every JetStream call of a service (and every KV/object store made from it) rides
        # out a NATS leader election instead of failing at once (jsretry.py); publishes
        # (KV writes included) take the requester's lean path.
        self.js: JetStreamContext = ElectionTolerantJetStream(
            nc, retry_s=js_retry_s, requester=self.requester
        )
        self.subjects = subjects
        # Debug check (`validate_replies`): run events must match their model at publish.
        self.validate_events = validate_events

    @classmethod
    async def connect(
        cls,
        settings: ServiceSettings,
        *,
        on_state: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> Bus:
        """Connect with reconnect forever; `on_state` hears connected/disconnected/closed."""

        async def notify(state: str) -> None:
            if on_state is not None:
                result = on_state(state)
                if result is not None:
                    await result

        async def disconnected() -> None:
            log.warning("nats disconnected")
            await notify("disconnected")

        made: list[Bus] = []

        async def reconnected() -> None:
            log.info("nats reconnected")
            if made:
                # Reads in flight may have died with our node: ask again. Requests on their
                # way to us, and our replies, may have died with it too: tell the others.
                await made[0].requester.resend()
                await made[0].nc.publish(made[0].subjects.control(PEER_RECONNECTED), identity)
            await notify("connected")

        async def closed() -> None:
            await notify("closed")

        async def error(exc: Exception) -> None:
            log.warning("nats error: %s", type(exc).__name__)

        options: dict[str, Any] = {
            "servers": nats_servers(settings.nats_url),
            "name": f"{settings.service}:{settings.instance}",
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.25,
            "connect_timeout": 2,
            "allow_reconnect": True,
            "disconnected_cb": disconnected,
            "reconnected_cb": reconnected,
            "closed_cb": closed,
            "error_cb": error,
            "pending_size": 64 * 1024 * 1024,
        }
        if settings.nats_user:
            options["user"] = settings.nats_user
            options["password"] = settings.secret("nats_password") or ""
        elif settings.nats_token:
            options["token"] = settings.secret("nats_token")
        nc = Client()
        await nc.connect(**options)
        await notify("connected")
        bus = cls(
            nc,
            Subjects(settings.subject_prefix),
            js_retry_s=settings.nats_retry_s,
            call_timeout_s=settings.request_timeout_s,
            validate_events=settings.validate_replies,
        )
        made.append(bus)
        identity = settings.instance.encode()

        async def peer_reconnected(msg: Msg) -> None:
            # A peer's node died: what we asked it and what it answered may be lost with
            # it, and only our own reconnect would resend. Its subscriptions are back
            # before this notice (same connection, in order), so a repeat reaches it.
            if msg.data != identity:
                await bus.requester.resend()

        await nc.subscribe(bus.subjects.control(PEER_RECONNECTED), cb=peer_reconnected)
        return bus

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    async def request(
        self,
        subject: str,
        payload: Any,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        unavailable: str = "service",
        resend_on_reconnect: bool = False,
    ) -> Any:
        """Request/reply on any subject with the JSON reply convention. A request made
        while a span is current carries its `traceparent` (aisopod.tracing)."""
        try:
            data = await self.requester.request(
                subject,
                codec.dumps(payload),
                timeout=timeout,
                headers=encode_headers(tracing.with_traceparent(headers)),
                no_responders_grace_s=NO_RESPONDERS_GRACE_S,
                resend_on_reconnect=resend_on_reconnect,
            )
        except NoRespondersError as exc:
            raise Unavailable(f"{unavailable} is not available", code="NO_RESPONDERS") from exc
        except NatsTimeout as exc:
            raise Unavailable(f"{unavailable} did not answer in time", code="NO_REPLY") from exc
        return decode_reply(data)

    async def call(
        self,
        method: str,
        params: Any,
        *,
        principal: Principal | None = None,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> Any:
        """Call an RPC method's owner (`<prefix>.rpc.<method>`) as `principal`; `timeout`
        defaults to the service's `request_timeout_s`."""
        headers = principal.to_headers() if principal is not None else {}
        trace_id = trace_id or headers.get(H_TRACE) or requestlog.current_request_id.get()
        if trace_id:
            headers[H_TRACE] = trace_id
        return await self.request(
            self.subjects.rpc(method),
            params if params is not None else {},
            timeout=timeout if timeout is not None else self.call_timeout_s,
            headers=headers or None,
            unavailable=f"the owner of {method}",
            resend_on_reconnect=resendable(method, params),
        )

    async def publish_event(
        self, event: str, payload: Any, headers: dict[str, str] | None = None
    ) -> int:
        """Publish a broadcast event into the EVENTS stream; returns its `seq`.

        `headers` carry routing facts that are not payload, e.g. `Aisopod-Origin-Conn`
        (the connection that started a run: agent.event `tool` frames go only there).
        """
        ack = await self.js.publish(
            self.subjects.evt(event), codec.dumps(self._event_wire(event, payload)), headers=headers
        )
        return ack.seq

    async def send_event(
        self, event: str, payload: Any, headers: dict[str, str] | None = None
    ) -> asyncio.Future[PubAck]:
        """`publish_event` in two halves: returns once the event is written to the
        connection, with a future of JetStream's ack (never times out by itself: wait for
        it with a timeout). Several events can be in flight, stored in the order sent."""
        return await self.js.publish_async(
            self.subjects.evt(event), codec.dumps(self._event_wire(event, payload)), headers=headers
        )

    def _event_wire(self, event: str, payload: Any) -> Any:
        if not self.validate_events:
            return codec.to_wire(payload)
        try:
            return checked_event(event, payload)
        except Nonconformance:
            log.exception("refusing to publish %s", event)
            raise

    async def publish(
        self, subject: str, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        """Core NATS publish (targeted frames, control messages): no persistence."""
        await self.nc.publish(subject, codec.dumps(codec.to_wire(payload)), headers=headers)

    async def close(self) -> None:
        """Flush what we published, then close. (No `drain()`: the host has already
        drained its RPC work, and draining long-lived JetStream watchers would only wait
        out nats-py's drain timeout.)"""
        if self.nc.is_closed:
            return
        try:
            if self.nc.is_connected:
                await flush_in_order(self.nc, 1)
        except Exception:  # closing anyway; a flush error must not mask shutdown
            pass
        await self.nc.close()
