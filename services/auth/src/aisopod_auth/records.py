"""What the auth service stores, one model per record. Secrets appear only as digests.

KV `auth`: `admin` (the bootstrap token's digest), `token.<digest>` (an index from a token
digest to whose token it is), `api.<tokenId>` (API tokens by id).
KV `devices`: `device.<id>` (a paired device and, per role, its approved scopes and token).
KV `nodes`: `node.<id>` (a paired node and its token digest).
KV `pairing` (TTL 5 min): `device.<id>.<role>` and `node.<id>` (pending requests), and
`req.<requestId>` (which pending request an id names).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class CredentialKind(StrEnum):
    """Who a presented secret belongs to."""

    ADMIN = "admin"  # the bootstrap admin token (launcher / AISOPOD_ADMIN_TOKEN_FILE)
    API = "api"  # a token made with `aisopod token create`
    PASSWORD = "password"  # the shared password of `password` mode
    DEVICE = "device"  # a paired device's token for one role
    NODE = "node"  # a paired node's token (node.pair.approve)


class AdminRecord(BaseModel):
    digest: str
    updated_at: int


class TokenRecord(BaseModel):
    """`token.<digest>`: the owner of a token. Device and node records hold the same digest,
    so a rotation or removal deletes the index entry with it."""

    kind: CredentialKind
    role: str = "operator"
    scopes: list[str] = Field(default_factory=list)
    token_id: str | None = None  # API tokens
    name: str | None = None  # API tokens: what it is for
    device_id: str | None = None
    node_id: str | None = None
    created_at: int


class ApiTokenEntry(BaseModel):
    """`api.<tokenId>`: an API token by id (for listing and revoking), digest only."""

    token_id: str
    digest: str
    name: str | None = None
    role: str
    scopes: list[str]
    created_at: int


class DeviceRole(BaseModel):
    """One role a device is approved for, and its token for that role."""

    scopes: list[str] = Field(default_factory=list)
    approved_at: int
    token_digest: str | None = None
    token_scopes: list[str] = Field(default_factory=list)
    token_issued_at: int | None = None
    # Approved but its token not yet handed over: the next signed connect receives it.
    pending_delivery: bool = False
    revoked_at: int | None = None


class DeviceRecord(BaseModel):
    device_id: str
    public_key: str
    client: dict[str, Any] | None = None
    roles: dict[str, DeviceRole] = Field(default_factory=dict)
    paired_at: int
    last_seen_at: int | None = None


class DevicePairing(BaseModel):
    """A pending device pairing request; repeated asks for the same device and role merge."""

    request_id: str
    device_id: str
    public_key: str
    role: str
    scopes: list[str]
    client: dict[str, Any] | None = None
    ip: str | None = None
    requested_at: int


class NodeRecord(BaseModel):
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    caps: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    paired_at: int
    request_id: str
    token_digest: str


class NodePairing(BaseModel):
    request_id: str
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    caps: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    requested_at: int


class RequestRef(BaseModel):
    """`req.<requestId>` → the pending request's key name (`device.<id>.<role>`, `node.<id>`)."""

    kind: str  # "device" or "node"
    subject_id: str
    role: str | None = None
