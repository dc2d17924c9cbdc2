"""Helpers of the auth suites (tests/integration/test_auth_*.py): a NATS admin session,
live config changes that restore themselves, Ed25519 device proofs, unique client IPs,
and the registry of every secret the suites used (grepped out of the logs at the end)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import nats
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nats.aio.client import Client

from aisopod import codec
from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.contracts.auth import signature_payload
from aisopod.errors import AisopodError
from aisopod.principal import Principal
from aisopod.subjects import Subjects

# Every secret a suite handled; test_security_logs checks none of them reached a log.
USED_SECRETS: set[str] = set()

OPERATOR = Principal(id="test-operator", scopes=("operator.pairing", "operator.admin"))


def remember(secret: str | None) -> str | None:
    if secret:
        USED_SECRETS.add(secret)
    return secret


def unique_ip() -> str:
    """A client address no other test uses (failures lock an address out)."""
    raw = f"2001:db8:{secrets.token_hex(2)}:{secrets.token_hex(2)}::{secrets.token_hex(2)}"
    return str(ipaddress.ip_address(raw))  # canonical, as the service reports it


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Device:
    """A device identity as a client holds it: an Ed25519 key pair."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    client_id: str = "aisopod-test"

    @property
    def raw_public(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def id(self) -> str:
        return hashlib.sha256(self.raw_public).hexdigest()

    def proof(
        self,
        nonce: str,
        *,
        role: str = "operator",
        scopes: list[str] | None = None,
        signed_at: int | None = None,
        **override: Any,
    ) -> dict[str, Any]:
        signed_at = int(time.time() * 1000) if signed_at is None else signed_at
        payload = signature_payload(
            device_id=override.pop("sign_id", self.id),
            client_id=self.client_id,
            role=role,
            scopes=scopes or [],
            signed_at=signed_at,
            nonce=override.pop("sign_nonce", nonce),
        )
        proof = {
            "id": self.id,
            "publicKey": b64url(self.raw_public),
            "signature": b64url(self.key.sign(payload)),
            "signedAt": signed_at,
            "nonce": nonce,
        }
        proof.update(override)
        return proof


def verify_request(
    *,
    ip: str,
    token: str | None = None,
    password: str | None = None,
    device_token: str | None = None,
    bearer: str | None = None,
    role: str = "operator",
    scopes: list[str] | None = None,
    device: Device | None = None,
    nonce: str | None = None,
    proof: dict[str, Any] | None = None,
    origin: str | None = None,
    direct_loopback: bool = False,
) -> dict[str, Any]:
    """An `auth.verify` request as the ws-gateway sends it for one connect frame."""
    scopes = scopes or []
    nonce = nonce or secrets.token_urlsafe(12)
    auth = {
        k: v
        for k, v in (("token", token), ("password", password), ("deviceToken", device_token))
        if v
    }
    body: dict[str, Any] = {
        "auth": auth,
        "role": role,
        "scopes": scopes,
        "nonce": nonce,
        "client": {"id": device.client_id if device else "aisopod-test", "mode": "test"},
        "clientIp": ip,
        "directLoopback": direct_loopback,
    }
    if bearer:
        body["bearer"] = bearer
    if origin:
        body["origin"] = origin
    if proof is not None:
        body["device"] = proof
    elif device is not None:
        body["device"] = device.proof(nonce, role=role, scopes=scopes)
    return body


class Admin:
    """The suites' NATS session as the admin user (test setup, direct service calls)."""

    def __init__(self, nc: Client, stack: Any) -> None:
        self.nc = nc
        self.stack = stack
        self.bus = Bus(nc, Subjects())

    async def verify(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self.bus.request(self.bus.subjects.auth("verify"), request, timeout=5)

    async def verify_error(self, request: dict[str, Any]) -> AisopodError:
        try:
            result = await self.verify(request)
        except AisopodError as exc:
            return exc
        raise AssertionError(f"verification succeeded: {result}")

    async def call(self, method: str, params: dict[str, Any], principal: Principal = OPERATOR):
        return await self.bus.call(method, params, principal=principal, timeout=5)

    async def request(self, verb: str, payload: dict[str, Any], principal: Principal = OPERATOR):
        return await self.bus.request(
            self.bus.subjects.auth(verb), payload, timeout=5, headers=principal.to_headers()
        )

    @asynccontextmanager
    async def listen(self, subject: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        """Messages on `subject` (events, closing orders) while the block runs."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def heard(msg: Any) -> None:
            await queue.put(codec.loads(msg.data))

        sub = await self.nc.subscribe(subject, cb=heard)
        await flush_in_order(self.nc, 5)
        try:
            yield queue
        finally:
            await sub.unsubscribe()

    async def store(self) -> ConfigStore:
        return ConfigStore(await self.nc.jetstream().key_value("config"))

    async def wait_applied(self, config_hash: str, timeout: float = 10.0) -> None:
        """Poll until every auth instance reports running `config_hash`."""
        instances = len(self.stack.pids.get("auth", [])) or 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            await self.nc.publish("aisopod.control.config.report", b"", reply=inbox)
            hashes = []
            try:
                while True:
                    msg = await sub.next_msg(timeout=0.2)
                    body = codec.loads(msg.data)
                    if body.get("service") == "auth":
                        hashes.append(body["hash"])
            except nats.errors.TimeoutError:
                pass
            finally:
                await sub.unsubscribe()
            if len(hashes) >= instances and all(h == config_hash for h in hashes):
                return
        raise AssertionError("the auth service did not apply the configuration in time")

    @asynccontextmanager
    async def live_config(self, change: Callable[[dict[str, Any]], None]) -> AsyncIterator[None]:
        """Apply `change` to the live configuration document; restore it afterwards."""
        store = await self.store()
        before = await store.load()
        document = before.config.document()
        change(document)
        written = await store.write(GatewayConfig.model_validate(document), before.hash)
        await self.wait_applied(written.hash)
        try:
            yield
        finally:
            current = await store.load()
            restored = await store.write(before.config, current.hash)
            await self.wait_applied(restored.hash)


@asynccontextmanager
async def admin_session(stack: Any) -> AsyncIterator[Admin]:
    nc = await nats.connect(
        stack.nats_url, user="admin", password=stack.nats_password("admin"), connect_timeout=2
    )
    try:
        yield Admin(nc, stack)
    finally:
        await nc.close()


async def next_matching(
    queue: asyncio.Queue[dict[str, Any]], match: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """The first message that matches, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching message in time")
        try:
            message = await asyncio.wait_for(queue.get(), left)
        except TimeoutError:
            raise AssertionError("no matching message in time") from None
        if match(message):
            return message
