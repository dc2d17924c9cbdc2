"""The one verification: credential → principal, for both the ws-gateway handshake and
every http-api request (`auth.verify` over NATS).

An `Attempt` is what either entry point saw; `Verifier.verify` resolves the credential
under the current auth mode, checks the device proof and pairing when a device identity was
presented, and returns the principal (plus a device token to hand over, once). Failed
attempts count toward the per-IP lockout; a locked IP is refused before anything else.

Attempts from one IP take turns (`Lockout.serial`) so a burst of guesses cannot all be
verified before the first failure is counted. A token that verified in the last minute is
not a guess: its attempts skip the turn-taking (they are still verified in full, so a
revocation applies at once, and still refused while the IP is locked). Without that, every
client behind one address (Traefik's forwardAuth at c=64, a NAT) queued on one lock across
each attempt's KV look-ups. Only the digest is remembered; passwords and device proofs
always take their turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aisopod.config.model import GatewayConfig
from aisopod.config.sections.auth import AuthSection
from aisopod.contracts.auth import ClientInfo, DeviceProof, VerifiedPrincipal, VerifyResult
from aisopod.errors import Forbidden, NotPaired, Unauthenticated
from aisopod.scopes import Role
from aisopod_auth.device_proof import verify_device_proof
from aisopod_auth.devices import DeviceRegistry, covers
from aisopod_auth.lockout import Lockout
from aisopod_auth.modes import (
    ALL_OPERATOR_SCOPES,
    AUTH_METHOD,
    accepts,
    granted_scopes,
    is_loopback_host,
    roles_for,
)
from aisopod_auth.nodes import NodeRegistry
from aisopod_auth.notify import Notifier
from aisopod_auth.passwords import PasswordChecker
from aisopod_auth.records import CredentialKind, DeviceRecord
from aisopod_auth.tokens import TokenStore, digest, same_digest

log = logging.getLogger("aisopod.auth.verify")

K = CredentialKind
Field = Literal["token", "password", "deviceToken", "bearer"]
_ROLES = frozenset(r.value for r in Role)
KNOWN_GOOD_S = 60.0
_KNOWN_GOOD_MAX = 4096


@dataclass(frozen=True, slots=True)
class Attempt:
    """One authentication attempt, whichever entry point it came through."""

    credential: tuple[Field, str] | None
    client_ip: str
    role: str = Role.OPERATOR.value
    scopes: list[str] | None = None  # None (HTTP): everything the credential allows
    device: DeviceProof | None = None
    nonce: str | None = None
    client: ClientInfo = field(default_factory=ClientInfo)
    origin: str | None = None
    direct_loopback: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """A valid credential: who it is and what it may do."""

    kind: CredentialKind
    principal_id: str
    roles: frozenset[str]
    scopes: tuple[str, ...]
    device_id: str | None = None
    node_id: str | None = None


class Verifier:
    def __init__(
        self,
        *,
        config: Callable[[], GatewayConfig],
        tokens: TokenStore,
        devices: DeviceRegistry,
        nodes: NodeRegistry,
        lockout: Lockout,
        notifier: Notifier,
        none_permitted: Callable[[AuthSection], bool],
    ) -> None:
        self.config = config
        self.tokens = tokens
        self.devices = devices
        self.nodes = nodes
        self.lockout = lockout
        self.notifier = notifier
        self.none_permitted = none_permitted
        self.passwords = PasswordChecker()
        self._known_good: dict[str, float] = {}  # token digest -> until (monotonic)

    async def verify(self, attempt: Attempt) -> VerifyResult:
        if attempt.role not in _ROLES:
            raise Forbidden(f"unknown role {attempt.role!r}", code="UNAUTHORIZED_ROLE")
        auth = self.config().auth
        if auth.mode == "none":
            return self._anonymous(attempt, auth)
        ip = attempt.client_ip
        self.lockout.check(ip)
        known = self._known_digest(attempt)
        if known is not None and self._known_good.get(known, 0.0) > time.monotonic():
            return await self._counted(attempt, auth, known)
        async with self.lockout.serial(ip):
            self.lockout.check(ip)  # a failure counted while this attempt waited its turn
            return await self._counted(attempt, auth, known)

    async def _counted(
        self, attempt: Attempt, auth: AuthSection, known: str | None
    ) -> VerifyResult:
        """Verify; count a failure toward the lockout, remember a token that passed."""
        try:
            result = await self._verify(attempt, auth)
        except Unauthenticated as exc:
            if known is not None:
                self._known_good.pop(known, None)
            if exc.detail_code != "AUTH_MISSING":
                await self.lockout.failed(attempt.client_ip)
            raise
        if known is not None and result.principal.auth_method != "password":
            self._remember_good(known)
        return result

    @staticmethod
    def _known_digest(attempt: Attempt) -> str | None:
        """The digest under which a passing token is remembered; None for what always
        takes its turn (no credential, a password field, a device proof)."""
        if attempt.credential is None or attempt.device is not None:
            return None
        where, value = attempt.credential
        return None if where == "password" else digest(value)

    def _remember_good(self, token_digest: str) -> None:
        now = time.monotonic()
        if len(self._known_good) >= _KNOWN_GOOD_MAX:
            self._known_good = {k: v for k, v in self._known_good.items() if v > now}
            if len(self._known_good) >= _KNOWN_GOOD_MAX:
                self._known_good.clear()  # a flood of valid tokens: start over, stay bounded
        self._known_good[token_digest] = now + KNOWN_GOOD_S

    def _anonymous(self, attempt: Attempt, auth: AuthSection) -> VerifyResult:
        if not self.none_permitted(auth):
            raise Unauthenticated(
                "auth mode none is refused on a non-loopback bind (auth.allowInsecureNoAuth)",
                code="AUTH_MODE_REFUSED",
            )
        if not auth.allow_insecure_no_auth and not is_loopback_host(attempt.client_ip):
            # A loopback bind can still be reached from elsewhere (an SSH tunnel, a proxy
            # on this machine that forwards the client's address): only this machine's
            # own clients are the anonymous operator.
            raise Unauthenticated(
                "auth mode none accepts clients on this machine only (auth.allowInsecureNoAuth)",
                code="AUTH_MODE_REFUSED",
            )
        device_id = self._proof(attempt) if attempt.device else None
        principal = VerifiedPrincipal(
            id="anonymous",
            role=attempt.role,
            scopes=granted_scopes(attempt.role, attempt.scopes, ALL_OPERATOR_SCOPES),
            auth_method="none",
            device_id=device_id,
        )
        return VerifyResult(principal=principal)

    def _proof(self, attempt: Attempt) -> str:
        assert attempt.device is not None
        return verify_device_proof(
            attempt.device,
            expected_nonce=attempt.nonce,
            client_id=attempt.client.id,
            role=attempt.role,
            scopes=attempt.scopes or [],
            now_ms=int(time.time() * 1000),
            client_mode=attempt.client.mode or "",
            platform=attempt.client.platform or "",
            device_family=attempt.client.device_family or "",
        )

    async def _verify(self, attempt: Attempt, auth: AuthSection) -> VerifyResult:
        grant = await self._resolve(attempt, auth) if attempt.credential else None
        device_id = self._proof(attempt) if attempt.device else None
        if grant is None:
            if device_id is not None and auth.mode == "device_token":
                return await self._device_only(attempt, device_id)
            raise Unauthenticated("a credential is required", code="AUTH_MISSING")
        if attempt.role not in grant.roles:
            raise Forbidden(
                f"this credential may not connect as {attempt.role}", code="UNAUTHORIZED_ROLE"
            )
        if grant.kind is K.DEVICE and device_id is not None and device_id != grant.device_id:
            raise Unauthenticated(
                "the device token belongs to another device", code="AUTH_DEVICE_TOKEN_INVALID"
            )
        scopes = granted_scopes(attempt.role, attempt.scopes, grant.scopes)
        delivered: str | None = None
        if device_id is not None:
            # What the device may be approved for: anything a shared secret or its own
            # token could carry after approval, but never beyond an API token's scopes.
            ceiling = grant.scopes if grant.kind is K.API else ALL_OPERATOR_SCOPES
            wanted = granted_scopes(attempt.role, attempt.scopes, ceiling)
            delivered = await self._paired(attempt, device_id, wanted)
        principal = VerifiedPrincipal(
            id=grant.principal_id,
            role=attempt.role,
            scopes=scopes,
            auth_method=AUTH_METHOD[grant.kind],
            device_id=device_id or grant.device_id,
            node_id=grant.node_id,
        )
        return VerifyResult(principal=principal, device_token=delivered)

    # -- credentials --------------------------------------------------------------------
    async def _resolve(self, attempt: Attempt, auth: AuthSection) -> Grant:
        assert attempt.credential is not None
        where, value = attempt.credential
        if where == "password":
            return await self._password(value, auth)
        token_digest = digest(value)
        grant = await self._token_grant(token_digest)
        if grant is None and where == "bearer" and auth.mode == "password":
            return await self._password(value, auth)
        if grant is None or (where == "deviceToken" and grant.kind is not K.DEVICE):
            if where == "deviceToken":
                raise Unauthenticated("invalid device token", code="AUTH_DEVICE_TOKEN_INVALID")
            raise Unauthenticated("invalid token", code="AUTH_TOKEN_MISMATCH")
        if not accepts(auth.mode, grant.kind, direct_loopback=attempt.direct_loopback):
            raise Unauthenticated(
                f"this credential is not accepted in auth mode {auth.mode}",
                code="AUTH_DEVICE_TOKEN_INVALID"
                if where == "deviceToken"
                else "AUTH_TOKEN_MISMATCH",
            )
        return grant

    async def _token_grant(self, token_digest: str) -> Grant | None:
        if self.tokens.is_admin(token_digest):
            return Grant(K.ADMIN, "admin", roles_for(K.ADMIN, None), ALL_OPERATOR_SCOPES)
        record = await self.tokens.lookup(token_digest)
        if record is None:
            return None
        if record.kind is K.DEVICE and record.device_id:
            device = await self.devices.get(record.device_id)
            entry = device.roles.get(record.role) if device else None
            if entry is None or not same_digest(entry.token_digest, token_digest):
                return None  # rotated or revoked a moment ago
            assert device is not None
            self.devices.seen(device)
            return Grant(
                K.DEVICE,
                f"device:{record.device_id}",
                roles_for(K.DEVICE, record.role),
                tuple(entry.token_scopes),
                device_id=record.device_id,
            )
        if record.kind is K.NODE and record.node_id:
            node = await self.nodes.get(record.node_id)
            if node is None or not same_digest(node.token_digest, token_digest):
                return None
            return Grant(
                K.NODE,
                f"node:{record.node_id}",
                roles_for(K.NODE, None),
                (),
                node_id=record.node_id,
            )
        if record.kind is K.API and record.token_id:
            return Grant(
                K.API,
                f"token:{record.token_id}",
                roles_for(K.API, record.role),
                tuple(record.scopes),
            )
        return None

    async def _password(self, password: str, auth: AuthSection) -> Grant:
        if auth.mode != "password":
            raise Unauthenticated(
                f"password sign-in is off (auth mode {auth.mode})", code="AUTH_PASSWORD_MISMATCH"
            )
        stored = auth.password_hash.get_secret_value() if auth.password_hash else None
        if not stored or not await self.passwords.check(password, stored):
            raise Unauthenticated("invalid password", code="AUTH_PASSWORD_MISMATCH")
        return Grant(K.PASSWORD, "operator", roles_for(K.PASSWORD, None), ALL_OPERATOR_SCOPES)

    # -- devices ------------------------------------------------------------------------
    async def _device_only(self, attempt: Attempt, device_id: str) -> VerifyResult:
        """`device_token` mode, a signed proof and no token: hand over the first token of
        an approved role, or ask an operator to approve."""
        wanted = granted_scopes(attempt.role, attempt.scopes, ALL_OPERATOR_SCOPES)
        record = await self.devices.get(device_id)
        entry = record.roles.get(attempt.role) if record else None
        if entry is not None and entry.token_digest and covers(entry.scopes, wanted):
            raise Unauthenticated(
                "this device has a token: present it as auth.deviceToken", code="AUTH_MISSING"
            )
        delivered = await self._paired(attempt, device_id, wanted, record)
        if delivered is None:  # another connect took the first token a moment ago
            raise Unauthenticated("present the device token", code="AUTH_MISSING")
        principal = VerifiedPrincipal(
            id=f"device:{device_id}",
            role=attempt.role,
            scopes=wanted,
            auth_method="device",
            device_id=device_id,
        )
        return VerifyResult(principal=principal, device_token=delivered)

    async def _paired(
        self,
        attempt: Attempt,
        device_id: str,
        wanted: list[str],
        record: DeviceRecord | None = None,
    ) -> str | None:
        """Check the device is approved for the role and `wanted` scopes; returns its first
        token when one awaits delivery. Raises NOT_PAIRED with a (merged) request."""
        record = record or await self.devices.get(device_id)
        entry = record.roles.get(attempt.role) if record else None
        if record is not None:
            self.devices.seen(record)
        if entry is None or not covers(entry.scopes, wanted):
            approved = entry.scopes if entry else []
            await self._ask(attempt, device_id, sorted(set(approved) | set(wanted)))
            record = await self.devices.get(device_id)
            entry = record.roles.get(attempt.role) if record else None
            assert entry is not None  # auto-approved, else _ask raised
        if not entry.pending_delivery:
            return None
        issued = await self.devices.issue(device_id, attempt.role, delivery=True)
        return issued[0] if issued else None

    async def _ask(self, attempt: Attempt, device_id: str, scopes: list[str]) -> None:
        """Create or merge the pairing request; auto-approve a direct loopback non-browser
        connection when the config allows it, else raise NOT_PAIRED."""
        assert attempt.device is not None
        client = attempt.client.model_dump(by_alias=True, exclude_none=True)
        request, grew = await self.devices.request(
            device_id=device_id,
            public_key=attempt.device.public_key,
            role=attempt.role,
            scopes=scopes,
            client=client,
            ip=attempt.client_ip,
        )
        auth = self.config().auth
        if auth.auto_approve_loopback and attempt.direct_loopback and not attempt.origin:
            request, _ = await self.devices.approve(request.request_id)
            await self.notifier.device_resolved(request, "approved")
            log.info("auto-approved a loopback device", extra={"deviceId": device_id})
            return
        if grew:
            await self.notifier.device_requested(request)
        raise NotPaired("this device must be approved by an operator", requestId=request.request_id)
