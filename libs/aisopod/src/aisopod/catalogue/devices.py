"""devices: device pairing and per-role device tokens. No token material is ever listed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, JsonValue

from aisopod.catalogue.fields import DeviceId, EpochMs, Ident, OkResult
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement, Role, Scope
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

P = Requirement.PAIRING
AU = ServiceName.AUTH

ScopeList = list[Scope]


class DevicePairRequest(Result):
    request_id: str
    device_id: str
    role: Role
    scopes: list[str]
    client: dict[str, JsonValue] | None = None
    ip: str | None = None
    requested_at: EpochMs


class PairedDevice(Result):
    device_id: str
    roles: list[Role]
    scopes: list[str]
    paired_at: EpochMs
    last_seen_at: EpochMs | None = None


class DevicePairListResult(Result):
    pending: list[DevicePairRequest]
    paired: list[PairedDevice]


class DevicePairDecisionParams(Params):
    """`scopes` narrows what an approval grants (never beyond what was requested)."""

    request_id: Ident
    scopes: ScopeList | None = Field(default=None, max_length=len(Scope))


class DevicePairDecisionResult(Result):
    request_id: str
    device_id: str
    decision: Literal["approved", "rejected"]


class DeviceIdParams(Params):
    device_id: DeviceId


class DeviceTokenRotateParams(Params):
    """`scopes` must lie within the device's approved set."""

    device_id: DeviceId
    role: Role
    scopes: ScopeList | None = Field(default=None, max_length=len(Scope))


class DeviceTokenRotateResult(Result):
    device_id: str
    role: Role
    token: str = Field(repr=False)
    scopes: list[str]


class DeviceTokenRevokeParams(Params):
    device_id: DeviceId
    role: Role


class DeviceTokenRevokeResult(Result):
    revoked_at: EpochMs


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("device.pair.list", AU, P, EmptyParams, DevicePairListResult, description="devices"),
    MethodSpec(
        "device.pair.approve",
        AU,
        P,
        DevicePairDecisionParams,
        DevicePairDecisionResult,
        description="approve a device pairing request",
    ),
    MethodSpec(
        "device.pair.reject",
        AU,
        P,
        DevicePairDecisionParams,
        DevicePairDecisionResult,
        description="reject a device pairing request",
    ),
    MethodSpec(
        "device.pair.remove",
        AU,
        P,
        DeviceIdParams,
        OkResult,
        description="unpair; closes its live connections",
    ),
    MethodSpec(
        "device.token.rotate",
        AU,
        P,
        DeviceTokenRotateParams,
        DeviceTokenRotateResult,
        description="issue a new token for one role",
    ),
    MethodSpec(
        "device.token.revoke",
        AU,
        P,
        DeviceTokenRevokeParams,
        DeviceTokenRevokeResult,
        description="revoke; closes connections using it",
    ),
)
