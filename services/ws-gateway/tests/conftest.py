"""The ws-gateway in-process against a real nats-server, reached by a real WebSocket client.

The auth service is a separate issue; until it lands, these tests serve `<prefix>.auth.verify`
themselves (a tiny responder on the real nats-server, not a mock of NATS), answering from a
token table and checking device proofs exactly as `aisopod.contracts.auth` specifies
(Ed25519 over the canonical string, nonce, ±2 min skew). Integration suites use the real auth.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from aisopod.bus import Bus, encode_reply
from aisopod.compat.natspy import flush_in_order
from aisopod.contracts.auth import VerifyRequest, signature_payload
from aisopod.errors import AisopodError, Forbidden, Unauthenticated
from aisopod.host import ServiceHost
from aisopod.scopes import ALL_SCOPES
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_ws_gateway import __version__
from aisopod_ws_gateway.main import run
from aisopod_ws_gateway.service import Gateway
from tests.support.seeding import seed_deployment
from tests.support.ws_client import WsClient

SEED = {
    "gateway": {
        "handshakeTimeoutMs": 1500,
        "tickIntervalMs": 1000,
        "maxBufferedBytes": 256 * 1024,
        "requestsPerSecond": 1000,
        "requestBurst": 50,
        "replayMaxEvents": 50,
    },
    "cors": {"allowedOrigins": ["http://ui.example"]},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@dataclass
class Running:
    url: str
    http: str
    prefix: str
    nc: NATS
    bus: Bus
    host: ServiceHost

    @property
    def gateway(self) -> Gateway:
        return self.host.gateway  # type: ignore[attr-defined]


async def start_gateway(
    nats_url: str, prefix: str, seed: Path, instance: str
) -> tuple[ServiceHost, asyncio.Event, asyncio.Task[None], int]:
    port = free_port()
    settings = ServiceSettings(
        service=ServiceName.WS_GATEWAY.value,
        nats_url=nats_url,
        subject_prefix=prefix,
        host="127.0.0.1",
        port=port,
        instance=instance,
        config_file=seed,
        drain_timeout_s=3,
        edge_secret=EDGE_SECRET,
    )
    await seed_deployment(nats_url, prefix, seed)
    host = ServiceHost(settings, ServiceName.WS_GATEWAY, __version__)
    stop = asyncio.Event()
    task = asyncio.create_task(run(host, stop, signals=False))
    deadline = time.monotonic() + 20
    while not (host._config is not None and host.ready and _accepts(port)):
        if task.done():
            task.result()
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not become ready")
        await asyncio.sleep(0.02)
    return host, stop, task, port


@pytest.fixture(scope="module")
async def gw(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    prefix = "g" + uuid.uuid4().hex[:8]
    seed = tmp_path_factory.mktemp("seed") / "aisopod.json"
    seed.write_text(json.dumps(SEED))
    nc = await nats.connect(nats_url)
    auth = await serve_auth(nc, prefix)
    host, stop, task, port = await start_gateway(nats_url, prefix, seed, "ws-unit-1")
    bus = Bus(nc, host.bus.subjects)
    try:
        yield Running(
            f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}", prefix, nc, bus, host
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await auth.unsubscribe()
        await nc.close()


# These tests reach the gateway directly, so they play Traefik's part: the edge proof.
EDGE_SECRET = "ws-unit-edge-secret"
WsClient.default_headers = {"X-Aisopod-Edge": EDGE_SECRET}


# --- the auth.verify responder ---------------------------------------------------------

TOKENS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # token → principal id, allowed scopes, allowed roles
    "admin-token": ("admin", tuple(ALL_SCOPES), ("operator", "node")),
    "reader-token": ("reader", ("operator.read",), ("operator",)),
    "node-token": ("node-1", (), ("node",)),
}


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(request: VerifyRequest) -> dict[str, Any]:
    token = request.auth.token or request.bearer
    if token is None or token not in TOKENS:
        raise Unauthenticated("token mismatch", code="AUTH_TOKEN_MISMATCH")
    principal, scopes, roles = TOKENS[token]
    if request.role not in roles:
        raise Forbidden("role not allowed", code="UNAUTHORIZED_ROLE")
    device_id = None
    if request.device is not None:
        proof = request.device
        raw = _unb64(proof.public_key)
        if hashlib.sha256(raw).hexdigest() != proof.id:
            raise Unauthenticated("device id mismatch", code="DEVICE_ID_MISMATCH")
        if proof.nonce != request.nonce:
            raise Unauthenticated("nonce mismatch", code="DEVICE_NONCE_MISMATCH")
        if abs(time.time() * 1000 - proof.signed_at) > 120_000:
            raise Unauthenticated("signature expired", code="DEVICE_SIGNATURE_EXPIRED")
        payload = signature_payload(
            device_id=proof.id,
            client_id=request.client.id,
            role=request.role,
            scopes=request.scopes or [],
            signed_at=proof.signed_at,
            nonce=proof.nonce,
        )
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(_unb64(proof.signature), payload)
        except (InvalidSignature, ValueError):
            raise Unauthenticated("bad signature", code="DEVICE_SIGNATURE_INVALID") from None
        device_id = proof.id
    return {
        "principal": {
            "id": principal,
            "role": request.role,
            "scopes": [s for s in request.scopes or [] if s in scopes],
            "authMethod": "token",
            "deviceId": device_id,
        }
    }


class Responders:
    """The auth.verify and ratelimit.edge responders, unsubscribed together."""

    def __init__(self, subs: list[Any]) -> None:
        self.subs = subs

    async def unsubscribe(self) -> None:
        for sub in self.subs:
            await sub.unsubscribe()


async def serve_auth(nc: NATS, prefix: str) -> Responders:
    async def handler(msg: Msg) -> None:
        try:
            reply = encode_reply(verify(VerifyRequest.model_validate(orjson.loads(msg.data))))
        except AisopodError as exc:
            reply = encode_reply(error=exc)
        await msg.respond(reply)

    async def edge_limit(msg: Msg) -> None:
        # Every upgrade admitted: the real per-IP limit is tested against the whole stack.
        result = {"allowed": True, "limit": 100, "remaining": 99, "resetMs": 1000}
        await msg.respond(encode_reply(result))

    responders = Responders(
        [
            await nc.subscribe(f"{prefix}.auth.verify", cb=handler),
            await nc.subscribe(f"{prefix}.ratelimit.edge", cb=edge_limit),
        ]
    )
    await flush_in_order(nc, 5)  # live before a gateway (another connection) can ask
    return responders
