"""The NATS bus: connection, RPC calls with identity headers, event publishing.

Replies are `{"result": ...}` or `{"error": {"code", "message", "data"}}`
(docs/protocol/architecture.md), so an edge forwards an owner's error unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck

from aisopod import codec, requestlog
from aisopod.errors import AisopodError, InternalError, Unavailable
from aisopod.principal import H_TRACE, Principal
from aisopod.requester import Client, Requester, encode_headers
from aisopod.settings import ServiceSettings
from aisopod.subjects import Subjects

log = logging.getLogger("aisopod.bus")


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

    def __init__(self, nc: NATS, subjects: Subjects) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.subjects = subjects
        # RPC requests: one inbox subscription, leaner than nats-py's request (requester.py).
        self.requester = Requester(nc)

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

        async def reconnected() -> None:
            log.info("nats reconnected")
            await notify("connected")

        async def closed() -> None:
            await notify("closed")

        async def error(exc: Exception) -> None:
            log.warning("nats error: %s", type(exc).__name__)

        options: dict[str, Any] = {
            "servers": [s.strip() for s in settings.nats_url.split(",")],
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
        return cls(nc, Subjects(settings.subject_prefix))

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
    ) -> Any:
        """Request/reply on any subject with the JSON reply convention."""
        try:
            data = await self.requester.request(
                subject, codec.dumps(payload), timeout=timeout, headers=encode_headers(headers)
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
        timeout: float = 10.0,
        trace_id: str | None = None,
    ) -> Any:
        """Call an RPC method's owner (`<prefix>.rpc.<method>`) as `principal`."""
        headers = principal.to_headers() if principal is not None else {}
        trace_id = trace_id or headers.get(H_TRACE) or requestlog.current_request_id.get()
        if trace_id:
            headers[H_TRACE] = trace_id
        return await self.request(
            self.subjects.rpc(method),
            params if params is not None else {},
            timeout=timeout,
            headers=headers or None,
            unavailable=f"the owner of {method}",
        )

    async def publish_event(
        self, event: str, payload: Any, headers: dict[str, str] | None = None
    ) -> int:
        """Publish a broadcast event into the EVENTS stream; returns its `seq`.

        `headers` carry routing facts that are not payload, e.g. `Aisopod-Origin-Conn`
        (the connection that started a run: agent.event `tool` frames go only there).
        """
        ack = await self.js.publish(
            self.subjects.evt(event), codec.dumps(codec.to_wire(payload)), headers=headers
        )
        return ack.seq

    async def send_event(
        self, event: str, payload: Any, headers: dict[str, str] | None = None
    ) -> asyncio.Future[PubAck]:
        """`publish_event` in two halves: returns once the event is written to the
        connection, with a future of JetStream's ack (never times out by itself: wait for
        it with a timeout). Several events can be in flight, stored in the order sent."""
        return await self.js.publish_async(
            self.subjects.evt(event), codec.dumps(codec.to_wire(payload)), headers=headers
        )

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
                await self.nc.flush(timeout=1)
        except Exception:  # closing anyway; a flush error must not mask shutdown
            pass
        await self.nc.close()
