"""`<prefix>.auth.verify`: the ws-gateway handshake and http-api (every API request, with the
request's bearer and no `scopes`) ask the auth service who a client is.

Request `VerifyRequest` → reply `{"result": VerifyResult}` or `{"error": …}` with the
documented codes: UNAUTHENTICATED (`data.code` AUTH_TOKEN_MISMATCH, AUTH_PASSWORD_MISMATCH,
AUTH_DEVICE_TOKEN_INVALID, AUTH_MISSING, DEVICE_SIGNATURE_INVALID, DEVICE_SIGNATURE_EXPIRED,
DEVICE_ID_MISMATCH, DEVICE_KEY_INVALID, DEVICE_NONCE_MISMATCH), NOT_PAIRED (`data.requestId`),
RATE_LIMITED (`data.retryAfterMs`), FORBIDDEN (`UNAUTHORIZED_ROLE`).

Device signature (Ed25519 over UTF-8 bytes of the canonical string, base64url without
padding for `publicKey` (raw 32 bytes) and `signature` (64 bytes)):

    v1|<deviceId>|<clientId>|<role>|<scopes joined by "," in the order sent>|<signedAt ms>|<nonce>

`deviceId` = lowercase hex sha256 of the raw public key; `signedAt` within ±2 min of the
server clock; `nonce` = the `connect.challenge` nonce of this socket.

`<prefix>.control.connections.close` (published by auth, heard by every ws-gateway, no queue
group): close the live connections that match, e.g. after `device.token.revoke`/`.rotate`
or `device.pair.remove`.

`<prefix>.control.auth.changed` (`AuthChanged`, published by auth, heard by every
ws-gateway): a credential may have stopped being valid or changed what it grants (revoke,
rotation, approval, removal, a change of the `auth` config section), or auth started
(`generation`: a fresh random value per auth process, also carried by every
`VerifyResult`) or is stopping. Whoever keeps verified credentials drops them on hearing
it (docs/ws-gateway.md, "The verified-credential cache").

`<prefix>.auth.token.create|list|revoke` (admin only: the request must carry a principal
with operator.admin in its NATS headers; used by `aisopod token`): operator API tokens
for scripts and SDKs, accepted in `token` mode. The token is returned once; only its sha256 is
stored.
"""

from __future__ import annotations

from pydantic import Field

from aisopod.scopes import Scope
from aisopod.wire import Params, Result, WireModel


def signature_payload(
    *, device_id: str, client_id: str, role: str, scopes: list[str], signed_at: int, nonce: str
) -> bytes:
    """The exact bytes a device signs (see the module docstring)."""
    return f"v1|{device_id}|{client_id}|{role}|{','.join(scopes)}|{signed_at}|{nonce}".encode()


def openclaw_signature_payloads(
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: list[str],
    signed_at: int,
    token: str,
    nonce: str,
    platform: str,
    device_family: str,
) -> tuple[bytes, bytes]:
    """The strings OpenClaw clients sign: v2 (Control UI) and v3 (node hosts, which add
    platform and device family, trimmed and ASCII-lowercased). `token` is the connect
    credential the client sent ("" when none)."""
    head = f"{device_id}|{client_id}|{client_mode}|{role}|{','.join(scopes)}|{signed_at}|{token}"
    v2 = f"v2|{head}|{nonce}"
    v3 = f"v3|{head}|{nonce}|{_ascii_lower(platform)}|{_ascii_lower(device_family)}"
    return v2.encode(), v3.encode()


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in text.strip())


class Credentials(WireModel):
    token: str | None = None
    password: str | None = None
    device_token: str | None = None


class DeviceProof(WireModel):
    id: str
    public_key: str
    signature: str
    signed_at: int
    nonce: str
    signed_token: str | None = Field(
        None, description="OpenClaw clients sign their connect token too (v2/v3 strings)"
    )


class ClientInfo(WireModel):
    id: str = "unknown"
    version: str | None = None
    platform: str | None = None
    mode: str | None = None
    display_name: str | None = None
    instance_id: str | None = None
    device_family: str | None = None


class VerifyRequest(WireModel):
    auth: Credentials = Field(default_factory=Credentials)
    bearer: str | None = Field(None, description="Authorization: Bearer of the upgrade request")
    role: str = "operator"
    scopes: list[str] | None = Field(
        None, description="requested scopes; absent (the HTTP API): all the credential allows"
    )
    device: DeviceProof | None = None
    nonce: str | None = Field(None, description="the challenge nonce this socket was sent")
    client: ClientInfo = Field(default_factory=ClientInfo)
    client_ip: str
    origin: str | None = None
    direct_loopback: bool = Field(
        False, description="no proxy hop (or only trusted ones) and a loopback client IP"
    )


class VerifiedPrincipal(WireModel):
    id: str
    role: str
    scopes: list[str]
    auth_method: str
    device_id: str | None = None
    node_id: str | None = Field(
        None, description="role node with a node-pairing token: the node id that token names"
    )


class VerifyResult(Result):
    principal: VerifiedPrincipal
    device_token: str | None = Field(None, description="issued on approval; sent once in hello")
    generation: str | None = Field(
        None, description="the answering auth process's generation (see `AuthChanged`)"
    )


class AuthChanged(WireModel):
    """Verified credentials may be stale: drop them (see the module doc)."""

    reason: str
    generation: str | None = None


class CloseConnections(WireModel):
    """Close every live connection that matches all the given fields."""

    device_id: str | None = None
    role: str | None = None
    principal_id: str | None = None
    conn_ids: list[str] | None = None
    reason: str = "credential revoked"
    code: int = 1008


class TokenCreateRequest(Params):
    """An operator token with these scopes (nodes get theirs from node pairing)."""

    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    name: str | None = Field(None, max_length=200)


class TokenInfo(Result):
    token_id: str
    name: str | None = None
    role: str
    scopes: list[str]
    created_at: int


class TokenCreated(TokenInfo):
    token: str = Field(repr=False, description="shown once")


class TokenList(Result):
    tokens: list[TokenInfo]


class TokenRevokeRequest(Params):
    token_id: str = Field(min_length=1, max_length=200)
