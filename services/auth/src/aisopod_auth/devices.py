"""Paired devices (KV `devices`) and their pending pairing requests (KV `pairing`).

A device is approved per role with a set of scopes. Its token for a role is issued when
the device next proves its key after approval (so the token is created and handed over in
one step, never stored in clear), or by `device.token.rotate`. A request for a device and
role that is already pending merges into it (scopes united, TTL refreshed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod.catalogue.devices import DevicePairRequest, PairedDevice
from aisopod.errors import Conflict, InvalidParams, NotFound
from aisopod.scopes import Role, effective_scopes
from aisopod_auth.kv import Entries
from aisopod_auth.records import (
    CredentialKind,
    DevicePairing,
    DeviceRecord,
    DeviceRole,
    RequestRef,
    TokenRecord,
)
from aisopod_auth.tokens import TokenStore, digest, new_id, new_token, now_ms

log = logging.getLogger("aisopod.auth.devices")

_SEEN_EVERY_MS = 60_000


def _pending_name(device_id: str, role: str) -> str:
    return f"{device_id}_{role}"


def covers(approved: list[str], wanted: list[str]) -> bool:
    """True when the approved scopes imply every wanted scope."""
    return set(wanted) <= effective_scopes(approved)


class DeviceRegistry:
    def __init__(self, devices: KeyValue, pairing: KeyValue, tokens: TokenStore) -> None:
        self.records = Entries(devices, "device", DeviceRecord)
        self.pending = Entries(pairing, "device", DevicePairing)
        self.refs = Entries(pairing, "req", RequestRef)
        self.tokens = tokens
        self._seen_sent: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, device_id: str) -> DeviceRecord | None:
        return await self.records.load(device_id)

    def seen(self, record: DeviceRecord) -> None:
        """Note that the device connected (`lastSeenAt` in listings), at most once a
        minute per device and off the verification path."""
        now = now_ms()
        if record.last_seen_at and now - record.last_seen_at < _SEEN_EVERY_MS:
            return
        if now - self._seen_sent.get(record.device_id, 0) < _SEEN_EVERY_MS:
            return
        self._seen_sent[record.device_id] = now
        if len(self._seen_sent) > 10_000:
            self._seen_sent.clear()

        def apply(current: DeviceRecord | None) -> DeviceRecord | None:
            return current.model_copy(update={"last_seen_at": now}) if current else None

        task = asyncio.create_task(self._touch(record.device_id, apply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch(
        self, device_id: str, apply: Callable[[DeviceRecord | None], DeviceRecord | None]
    ) -> None:
        try:
            await self.records.update(device_id, apply)
        except Exception:  # bookkeeping only: a lost update costs nothing
            log.debug("could not record lastSeenAt", exc_info=True)

    # -- pairing requests ---------------------------------------------------------------
    async def request(
        self,
        *,
        device_id: str,
        public_key: str,
        role: str,
        scopes: list[str],
        client: dict[str, Any] | None,
        ip: str | None,
    ) -> tuple[DevicePairing, bool]:
        """The pending request for this device and role (created or merged), and whether
        it is new or asks for more than before (then operators hear of it again)."""
        grew = False

        def merge(current: DevicePairing | None) -> DevicePairing:
            nonlocal grew
            if current is None:
                grew = True
                return DevicePairing(
                    request_id=new_id("pair"),
                    device_id=device_id,
                    public_key=public_key,
                    role=role,
                    scopes=sorted(set(scopes)),
                    client=client,
                    ip=ip,
                    requested_at=now_ms(),
                )
            united = sorted(set(current.scopes) | set(scopes))
            grew = united != current.scopes
            # Rewritten even when unchanged: the write restarts the bucket's TTL.
            return current.model_copy(update={"scopes": united, "client": client, "ip": ip})

        request = await self.pending.update(_pending_name(device_id, role), merge)
        assert request is not None
        ref = RequestRef(kind="device", subject_id=device_id, role=role)
        await self.refs.put(request.request_id, ref)
        return request, grew

    async def _claim(self, request_id: str) -> DevicePairing:
        """Take a pending request out of the bucket; exactly one decision wins."""
        ref = await self.refs.load(request_id)
        if ref is None or ref.kind != "device" or ref.role is None:
            raise NotFound(f"no pending device pairing request {request_id}")
        name = _pending_name(ref.subject_id, ref.role)
        found = await self.pending.get(name)
        if found is None or found[0].request_id != request_id:
            raise NotFound(f"no pending device pairing request {request_id}")
        request, revision = found
        try:
            await self.pending.delete(name, revision)
        except KeyWrongLastSequenceError:
            raise Conflict("the request changed meanwhile; list and decide again") from None
        await self.refs.delete(request_id)
        return request

    async def approve(
        self, request_id: str, scopes: list[str] | None = None
    ) -> tuple[DevicePairing, DeviceRecord]:
        request = await self._claim(request_id)
        approved = request.scopes if scopes is None else sorted(set(request.scopes) & set(scopes))
        now = now_ms()

        def apply(current: DeviceRecord | None) -> DeviceRecord:
            record = current or DeviceRecord(
                device_id=request.device_id,
                public_key=request.public_key,
                client=request.client,
                paired_at=now,
            )
            role = record.roles.get(request.role)
            if role is not None and role.token_digest:
                # An upgrade: the device keeps its token, which now carries the new scopes.
                role = role.model_copy(
                    update={"scopes": approved, "token_scopes": approved, "approved_at": now}
                )
            else:
                role = DeviceRole(scopes=approved, approved_at=now, pending_delivery=True)
            return record.model_copy(update={"roles": {**record.roles, request.role: role}})

        record = await self.records.update(request.device_id, apply)
        assert record is not None
        role = record.roles[request.role]
        if role.token_digest:
            await self.tokens.register(role.token_digest, self._token_record(record, request.role))
        return request, record

    async def reject(self, request_id: str) -> DevicePairing:
        return await self._claim(request_id)

    # -- tokens -------------------------------------------------------------------------
    def _token_record(self, record: DeviceRecord, role: str) -> TokenRecord:
        entry = record.roles[role]
        return TokenRecord(
            kind=CredentialKind.DEVICE,
            role=role,
            scopes=entry.token_scopes,
            device_id=record.device_id,
            created_at=entry.token_issued_at or now_ms(),
        )

    async def issue(
        self, device_id: str, role: str, scopes: list[str] | None = None, *, delivery: bool = False
    ) -> tuple[str, DeviceRecord, str | None] | None:
        """A new token for an approved role: (token, record, the replaced token's digest).

        `delivery`: only if the role awaits its first token (a signed connect after
        approval); None when another connect got it first.
        """
        token = new_token()
        new_digest = digest(token)
        replaced: list[str | None] = [None]
        now = now_ms()

        def apply(current: DeviceRecord | None) -> DeviceRecord:
            if current is None or role not in current.roles:
                raise NotFound(f"device {device_id} is not approved for role {role}")
            entry = current.roles[role]
            if delivery and not entry.pending_delivery:
                raise _NothingToDeliver
            chosen = entry.scopes if scopes is None else sorted(set(scopes))
            if not covers(entry.scopes, chosen):
                raise InvalidParams(
                    "scopes must lie within the device's approved scopes",
                    approvedScopes=entry.scopes,
                )
            replaced[0] = entry.token_digest
            entry = entry.model_copy(
                update={
                    "token_digest": new_digest,
                    "token_scopes": chosen,
                    "token_issued_at": now,
                    "pending_delivery": False,
                    "revoked_at": None,
                }
            )
            return current.model_copy(
                update={"roles": {**current.roles, role: entry}, "last_seen_at": now}
            )

        try:
            record = await self.records.update(device_id, apply)
        except _NothingToDeliver:
            return None
        assert record is not None
        await self.tokens.register(new_digest, self._token_record(record, role))
        await self.tokens.forget(replaced[0])
        return token, record, replaced[0]

    async def revoke(self, device_id: str, role: str) -> int:
        """Drop the role's token (the approval stays); returns revokedAt."""
        revoked: list[str | None] = [None]
        now = now_ms()

        def apply(current: DeviceRecord | None) -> DeviceRecord:
            if current is None or role not in current.roles:
                raise NotFound(f"device {device_id} has no {role} token")
            entry = current.roles[role]
            revoked[0] = entry.token_digest
            entry = entry.model_copy(
                update={
                    "token_digest": None,
                    "token_scopes": [],
                    "pending_delivery": False,
                    "revoked_at": now,
                }
            )
            return current.model_copy(update={"roles": {**current.roles, role: entry}})

        await self.records.update(device_id, apply)
        await self.tokens.forget(revoked[0])
        return now

    async def remove(self, device_id: str) -> DeviceRecord:
        removed: list[DeviceRecord] = []

        def apply(current: DeviceRecord | None) -> None:
            if current is None:
                raise NotFound(f"no paired device {device_id}")
            removed[:] = [current]  # a CAS retry sees the newer record
            return None

        await self.records.update(device_id, apply)
        for entry in removed[0].roles.values():
            await self.tokens.forget(entry.token_digest)
        for role in Role:
            found = await self.pending.get(_pending_name(device_id, role.value))
            if found is not None:
                await self.pending.delete(_pending_name(device_id, role.value))
                await self.refs.delete(found[0].request_id)
        return removed[0]

    # -- listing ------------------------------------------------------------------------
    async def listing(self) -> tuple[list[DevicePairRequest], list[PairedDevice]]:
        pending = [request_view(r) for r in await self.pending.all()]
        paired = [paired_view(d) for d in await self.records.all()]
        pending.sort(key=lambda r: r.requested_at)
        paired.sort(key=lambda d: d.paired_at)
        return pending, paired


def paired_view(record: DeviceRecord) -> PairedDevice:
    scopes = sorted({s for entry in record.roles.values() for s in entry.scopes})
    return PairedDevice(
        device_id=record.device_id,
        roles=[Role(r) for r in sorted(record.roles)],
        scopes=scopes,
        paired_at=record.paired_at,
        last_seen_at=record.last_seen_at,
    )


def request_view(request: DevicePairing) -> DevicePairRequest:
    return DevicePairRequest(
        request_id=request.request_id,
        device_id=request.device_id,
        role=Role(request.role),
        scopes=request.scopes,
        client=request.client,
        ip=request.ip,
        requested_at=request.requested_at,
    )


class _NothingToDeliver(Exception):
    """The role's first token was already handed over (by a concurrent connect)."""
