"""system: the handshake (`connect`), health, status, logs, presence and subscriptions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    JsonValue,
    RootModel,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel

from aisopod.catalogue.fields import (
    DeviceId,
    EpochMs,
    EventPattern,
    Secret,
    SessionKey,
    absent_when_none,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.catalogue.usage import UsageSummary
from aisopod.scopes import Requirement, Role
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, ANY = Requirement.READ, Requirement.ANY
WG, RT = ServiceName.WS_GATEWAY, ServiceName.RUNTIME

PROTOCOL_VERSION = 1

_Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]


# --- connect -------------------------------------------------------------------------------


class _ConnectPart(Params):
    """Handshake params ignore unknown fields: clients of newer protocol revisions (and
    OpenClaw clients) send extras that must not break the handshake."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ClientInfo(_ConnectPart):
    id: _Short
    version: _Short
    platform: _Short
    mode: _Short
    display_name: _Short | None = None
    instance_id: _Short | None = None
    device_family: _Short | None = None


class ConnectAuth(_ConnectPart):
    """At most one credential; none when the upgrade's Bearer header was already verified."""

    token: Secret | None = Field(default=None, repr=False)
    password: Secret | None = Field(default=None, repr=False)
    device_token: Secret | None = Field(default=None, repr=False)

    @model_validator(mode="after")
    def _at_most_one(self) -> ConnectAuth:
        given = [v for v in (self.token, self.password, self.device_token) if v is not None]
        if len(given) > 1:
            raise ValueError("auth takes one of token, password, deviceToken")
        return self


class DeviceIdentity(_ConnectPart):
    """Ed25519 identity; the signature covers nonce, role, scopes and signedAt."""

    id: DeviceId
    public_key: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    signed_at: EpochMs
    nonce: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    signed_token: Secret | None = Field(default=None, repr=False)
    """Set by the OpenClaw codec: its clients' signature covers the connect token."""


class ResumeRequest(_ConnectPart):
    last_seq: int = Field(ge=0)


class ConnectParams(_ConnectPart):
    min_protocol: int = Field(default=PROTOCOL_VERSION, ge=1)
    max_protocol: int = Field(default=PROTOCOL_VERSION, ge=1)
    client: ClientInfo
    role: Role = Role.OPERATOR
    # Plain strings: unknown scope names are dropped by the grant, not a handshake error.
    scopes: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=32
    )
    auth: ConnectAuth | None = None
    device: DeviceIdentity | None = None
    caps: list[_Short] = Field(default_factory=list, max_length=256)
    commands: list[_Short] = Field(default_factory=list, max_length=1024)
    subscribe: list[EventPattern] | None = Field(default=None, max_length=256)
    resume: ResumeRequest | None = None

    @model_validator(mode="after")
    def _protocol_range(self) -> ConnectParams:
        if self.min_protocol > self.max_protocol:
            raise ValueError("minProtocol is greater than maxProtocol")
        return self


class ServiceHealth(Result):
    ok: bool
    instances: int = Field(ge=0)


class HealthResult(Result):
    ok: bool
    ts: EpochMs
    services: dict[str, ServiceHealth]


class PresenceEntry(Result):
    key: str
    conn_id: str
    client: dict[str, JsonValue]
    role: Role
    ip: str | None = None
    since: EpochMs
    last_seen_ms: EpochMs
    instance: str
    """The ws-gateway replica holding the connection."""
    node_id: str | None = absent_when_none()
    caps: list[str] | None = absent_when_none()
    """Nodes only, as declared at connect (also `commands`)."""
    commands: list[str] | None = absent_when_none()


class PresenceList(RootModel[list[PresenceEntry]]):
    """`system-presence`: every connected client, cluster-wide."""


class ServerInfo(Result):
    version: str
    conn_id: str
    instance: str


class Features(Result):
    methods: list[str]
    events: list[str]


class Snapshot(Result):
    presence: list[PresenceEntry]
    health: HealthResult
    uptime_ms: EpochMs


class HelloAuth(Result):
    method: str
    role: Role
    scopes: list[str]
    device_token: str | None = Field(default=None, repr=False)


class HelloPolicy(Result):
    max_payload: int = Field(ge=1)
    max_buffered_bytes: int = Field(ge=1)
    tick_interval_ms: int = Field(ge=1)


class ResumeOutcome(Result):
    replayed: int = Field(ge=0)
    gap: bool


class HelloResult(Result):
    protocol: int
    server: ServerInfo
    features: Features
    snapshot: Snapshot
    auth: HelloAuth
    policy: HelloPolicy
    resume: ResumeOutcome | None = None


# --- status, logs --------------------------------------------------------------------------


class ServiceInstance(Result):
    id: str
    version: str


class ServiceStatus(Result):
    instances: list[ServiceInstance]


class StatusInternals(Result):
    """What operators debug with: each instance's endpoints and counters, the streams'
    sizes, the config revision and the NATS server this runtime talks to."""

    instances: list[dict[str, JsonValue]]
    streams: dict[str, dict[str, JsonValue]]
    config: dict[str, JsonValue]
    nats: dict[str, JsonValue]
    answered_by: str


class StatusResult(Result):
    """`internals` only for admins."""

    services: dict[str, ServiceStatus]
    connections: int = Field(ge=0)
    agents: int = Field(ge=0)
    sessions: int = Field(ge=0)
    uptime_ms: EpochMs
    usage: UsageSummary | None = absent_when_none()
    """Tokens of the last 30 days, as `usage.status` counts them."""
    internals: StatusInternals | None = absent_when_none()


LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class LogsTailParams(Params):
    cursor: int | None = Field(default=None, ge=0)
    limit: int = Field(default=500, ge=1, le=5000)
    service: ServiceName | None = None
    level: LogLevel | None = None


class LogLine(Result):
    """One record of the LOGS stream; `fields` holds the record's other keys."""

    seq: int = Field(ge=1)
    ts: EpochMs
    service: str
    level: str
    message: str
    instance: JsonValue = absent_when_none()
    logger: JsonValue = absent_when_none()
    exc: JsonValue = absent_when_none()
    fields: dict[str, JsonValue] | None = absent_when_none()


class LogsTailResult(Result):
    """`reset` (only when true): the cursor was outside the stream; reading restarted."""

    cursor: int = Field(ge=0)
    lines: list[LogLine]
    reset: bool | None = absent_when_none()


# --- subscriptions -------------------------------------------------------------------------


class SubscribeParams(Params):
    events: list[EventPattern] = Field(max_length=256)
    session_keys: list[SessionKey] | None = Field(default=None, max_length=256)


class SubscriptionResult(Result):
    """The connection's subscription after the change."""

    events: list[str]
    session_keys: list[str] | None = None


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "connect", WG, ANY, ConnectParams, HelloResult, description="handshake (first frame)"
    ),
    MethodSpec("health", WG, ANY, EmptyParams, HealthResult, description="cached health snapshot"),
    MethodSpec("status", RT, R, EmptyParams, StatusResult, description="services and counts"),
    MethodSpec("logs.tail", RT, R, LogsTailParams, LogsTailResult, description="tail stream LOGS"),
    MethodSpec(
        "system-presence", WG, R, EmptyParams, PresenceList, description="connected clients"
    ),
    MethodSpec(
        "subscribe", WG, ANY, SubscribeParams, SubscriptionResult, description="narrow events"
    ),
    MethodSpec(
        "unsubscribe", WG, ANY, SubscribeParams, SubscriptionResult, description="drop events"
    ),
)
