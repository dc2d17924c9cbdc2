"""The handshake (docs/protocol/websocket.md): challenge, `connect`, verification by auth, `hello`.

Order of checks: first frame is a `connect` request (else INVALID_REQUEST, 1008); protocol
range (PROTOCOL_MISMATCH, 1002); params; browser origin; credentials, device signature and
role verified by the auth service over NATS (`auth.verify`), or a token-only credential
auth verified before taken from the cache (credentials.py); granted scopes = requested ∩
allowed. Then the connection is registered, resume replayed, and `hello` sent.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from aisopod.catalogue.system import PROTOCOL_VERSION, ConnectParams
from aisopod.clientip import is_loopback
from aisopod.contracts.auth import (
    ClientInfo,
    Credentials,
    DeviceProof,
    VerifyRequest,
    VerifyResult,
)
from aisopod.credcache import Question
from aisopod.errors import (
    AisopodError,
    Forbidden,
    InternalError,
    Unavailable,
    invalid_params_from_validation,
)
from aisopod.jsonrpc import Call, Decoded
from aisopod.principal import Principal
from aisopod.scopes import Requirement, Role, grant
from aisopod_ws_gateway import metrics
from aisopod_ws_gateway.audience import Subscription
from aisopod_ws_gateway.connection import Connection, State
from aisopod_ws_gateway.origin import origin_allowed

if TYPE_CHECKING:
    import asyncio

    from aisopod.config.model import GatewayConfig
    from aisopod.config.sections.gateway import GatewaySection
    from aisopod.host import ServiceHost
    from aisopod_ws_gateway.audience import View, Views
    from aisopod_ws_gateway.credentials import Verifier
    from aisopod_ws_gateway.fanout import Fanout
    from aisopod_ws_gateway.health import HealthMonitor
    from aisopod_ws_gateway.nodes import Nodes
    from aisopod_ws_gateway.presence import Presence

log = logging.getLogger("aisopod.ws.handshake")


class HandshakeHost(Protocol):
    """What the handshake uses of its gateway (service.Gateway is one)."""

    @property
    def host(self) -> ServiceHost: ...

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def config(self) -> GatewaySection: ...

    @property
    def full_config(self) -> GatewayConfig: ...

    @property
    def own_host_names(self) -> frozenset[str]: ...

    @property
    def views(self) -> Views: ...

    @property
    def nodes(self) -> Nodes: ...

    @property
    def fanout(self) -> Fanout: ...

    @property
    def presence(self) -> Presence: ...

    @property
    def credentials(self) -> Verifier: ...

    @property
    def health(self) -> HealthMonitor: ...

    def register(self, conn: Connection) -> None: ...

    def features(self, view: View) -> dict[str, list[str]]: ...

    def features_json(self, view: View) -> bytes: ...


# The fields every connection's principal is built with: pydantic keeps a set of them per
# instance (`model_fields_set`, 728 bytes for nine names); equal ones share this one (a
# frozen model never changes it; `model_copy` copies it first).
_PRINCIPAL_FIELDS_SET = {
    "id",
    "role",
    "scopes",
    "auth_method",
    "conn_id",
    "client_ip",
    "device_id",
    "node_id",
    "wire",
}


def share_fields_set(principal: Principal) -> None:
    if principal.model_fields_set == _PRINCIPAL_FIELDS_SET:
        object.__setattr__(principal, "__pydantic_fields_set__", _PRINCIPAL_FIELDS_SET)


class Handshake:
    def __init__(self, gateway: HandshakeHost) -> None:
        self.gateway = gateway

    def challenge(self, conn: Connection) -> None:
        conn.send_payload(conn.codec.challenge(conn.nonce, int(time.time() * 1000)))
        timeout = self.gateway.config.handshake_timeout_ms / 1000
        conn.timer = self.gateway.loop.call_later(timeout, self._timed_out, conn)

    def _timed_out(self, conn: Connection) -> None:
        conn.timer = None
        if conn.state in (State.PENDING, State.VERIFYING):
            metrics.HANDSHAKES.labels("timeout").inc()
            conn.close(1008, "handshake timeout")

    def first_frame(self, conn: Connection, decoded: Decoded) -> None:
        item = decoded.items[0]
        if (
            decoded.batch
            or not isinstance(item, Call)
            or item.notification
            or item.method != "connect"
        ):
            metrics.HANDSHAKES.labels("invalid").inc()
            conn.fail_handshake(getattr(item, "id", None), conn.codec.first_frame_error(), 1008)
            return
        conn.state = State.VERIFYING
        conn.spawn(self._connect(conn, item))

    async def _connect(self, conn: Connection, call: Call) -> None:
        try:
            await self._handshake(conn, call)
        except AisopodError as exc:
            metrics.HANDSHAKES.labels(exc.detail_code.lower()).inc()
            code = 1002 if exc.detail_code == "PROTOCOL_MISMATCH" else 1008
            if isinstance(exc, Unavailable):
                code = 1013  # try again later: a dependency is down, not the client's fault
            conn.fail_handshake(call.id, exc, code)
        except Exception:
            log.exception("handshake failed")
            conn.fail_handshake(call.id, InternalError(), 1011)

    async def _handshake(self, conn: Connection, call: Call) -> None:
        raw = call.params if isinstance(call.params, dict) else {}
        conn.codec.check_protocol(raw)
        try:
            params = ConnectParams.model_validate(conn.codec.connect_params(raw))
        except ValidationError as exc:
            raise invalid_params_from_validation(exc.errors()) from None
        gateway = self.gateway
        config = gateway.full_config
        if not origin_allowed(
            conn.origin,
            host=conn.host_header,
            forwarded_host=conn.forwarded_host,
            allowed=config.cors.allowed_origins,
            own_names=gateway.own_host_names,
        ):
            raise Forbidden(f"origin not allowed: {conn.origin}", code="ORIGIN_NOT_ALLOWED")
        verified = await self._verify(conn, params)
        role = Role(verified.principal.role)
        if role != params.role:
            raise Forbidden(
                f"this credential may not connect as {params.role.value}", code="UNAUTHORIZED_ROLE"
            )
        scopes = tuple(grant(params.scopes, verified.principal.scopes))
        client = params.client.model_dump(by_alias=True, exclude_none=True)
        conn.client = client
        conn.device_id = verified.principal.device_id
        if role == Role.NODE:
            # A node-pairing token pins the node id; a device proves its own; only a shared
            # operator credential (trusted already) lets a node name itself.
            conn.node_id = (
                verified.principal.node_id
                or verified.principal.device_id
                or params.client.instance_id
                or params.client.id
            )
        principal = Principal(
            id=verified.principal.id,
            role=role,
            scopes=scopes,
            auth_method=verified.principal.auth_method,
            conn_id=conn.conn_id,
            client_ip=conn.ip,
            device_id=verified.principal.device_id,
            node_id=conn.node_id,
            wire=None if conn.codec.name == "jsonrpc" else conn.codec.name,
        )
        share_fields_set(principal)
        include = frozenset(params.subscribe) if params.subscribe is not None else None
        view = gateway.views.get(role, scopes, Subscription(include=include))
        if conn.state is State.CLOSED:
            return
        if role == Role.NODE:
            gateway.nodes.declare(conn, caps=params.caps, commands=params.commands)
            await gateway.nodes.attach(conn)
            # Listed on every replica once its hello is out (presence.py, write_ahead). One
            # closed by now is gone for good: `abandon` has already run for it.
            if conn.state is not State.CLOSED:
                await gateway.presence.write_ahead(conn, principal)
        # The events consumer runs before the connection is registered and its hello
        # sent: an event stored after the hello (or after a resume's replay) reaches it.
        if conn.state is State.CLOSED:
            return
        await gateway.fanout.hold(conn.conn_id)
        if conn.state is State.CLOSED:  # closed while the consumer started
            gateway.fanout.release(conn.conn_id)
            return
        resume = params.resume
        if resume is not None:
            conn.begin_replay()
        # The view first: from registration on, live events are matched (and, while the
        # replay runs, buffered) for this connection.
        conn.view = view
        gateway.register(conn)
        outcome: dict[str, Any] | None = None
        frames: list[bytes] = []
        upto = 0
        if resume is not None:
            frames, upto, gap = await gateway.fanout.replay(conn, view, resume.last_seq)
            outcome = {"replayed": len(frames), "gap": gap}
        if conn.state is State.CLOSED:
            return
        conn.open(principal, view)
        head, tail = self._hello(conn, principal, view, verified.device_token, outcome)
        features = (gateway.features(view), gateway.features_json(view))
        conn.send_payload(conn.codec.hello_reply(call.id, head, features, tail))
        if resume is not None:
            for frame in frames:
                conn.transport.write_frame(frame)
            conn.end_replay(upto)
        metrics.HANDSHAKES.labels("ok").inc()
        gateway.presence.add(conn)

    async def _verify(self, conn: Connection, params: ConnectParams) -> VerifyResult:
        ordered, conn.ordered = conn.ordered, None
        return await self.gateway.credentials.check(
            self._question(conn, params), conn.ip, lambda: self._request(conn, params), ordered
        )

    @staticmethod
    def _question(conn: Connection, params: ConnectParams) -> Question | None:
        """What the credential cache keys this attempt on: `credentials.question_of` of
        the request `_request` would build, read from the same values without building
        it (only a miss needs it); None for a password or a device proof."""
        auth = params.auth
        if (auth and auth.password) or params.device is not None:
            return None
        return Question(
            token=auth.token if auth else None,
            device_token=auth.device_token if auth else None,
            bearer=conn.bearer,
            role=params.role.value,
            scopes=list(params.scopes),
            origin=conn.origin,
            direct_loopback=is_loopback(conn.ip),
        )

    @staticmethod
    def _request(conn: Connection, params: ConnectParams) -> VerifyRequest:
        """What auth is asked (`auth.verify`)."""
        auth = params.auth
        device = params.device
        return VerifyRequest(
            auth=Credentials(
                token=auth.token if auth else None,
                password=auth.password if auth else None,
                device_token=auth.device_token if auth else None,
            ),
            bearer=conn.bearer,
            role=params.role.value,
            scopes=list(params.scopes),
            device=DeviceProof(
                id=device.id,
                public_key=device.public_key,
                signature=device.signature,
                signed_at=device.signed_at,
                nonce=device.nonce,
                signed_token=device.signed_token,
            )
            if device
            else None,
            nonce=conn.nonce,
            client=ClientInfo.model_validate(params.client.model_dump()),
            client_ip=conn.ip,
            origin=conn.origin,
            direct_loopback=is_loopback(conn.ip),
        )

    def _hello(
        self,
        conn: Connection,
        principal: Principal,
        view: Any,
        device_token: str | None,
        resume: dict[str, Any] | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The `hello` result around `features` (which the codec splices in, pre-encoded
        once per view: the bulk of every hello)."""
        gateway = self.gateway
        cfg = gateway.config
        auth: dict[str, Any] = {
            "method": principal.auth_method,
            "role": principal.role.value,
            "scopes": list(principal.scopes),
        }
        if device_token:
            auth["deviceToken"] = device_token
        head = {
            "protocol": PROTOCOL_VERSION,
            "server": {
                "version": gateway.host.version,
                "connId": conn.conn_id,
                "instance": gateway.host.instance,
            },
        }
        tail: dict[str, Any] = {
            "snapshot": {
                "presence": gateway.presence.snapshot_fragment()
                if principal.may(Requirement.READ)
                else [],
                "health": gateway.health.snapshot,
                "uptimeMs": int((time.time() - gateway.host.started_at) * 1000),
            },
            "auth": auth,
            "policy": {
                "maxPayload": cfg.max_payload,
                "maxBufferedBytes": cfg.max_buffered_bytes,
                "tickIntervalMs": cfg.tick_interval_ms,
            },
        }
        if resume is not None:
            tail["resume"] = resume
        return head, tail
