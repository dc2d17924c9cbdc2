"""Device identity: check an Ed25519 proof of possession against the socket's challenge.

Pure (no I/O). The canonical string is `aisopod.contracts.auth.signature_payload`; the order
of checks is fixed so each failure has its own `data.code`: a key that is not a raw 32-byte
Ed25519 key (DEVICE_KEY_INVALID), an id that is not the key's sha256 (DEVICE_ID_MISMATCH),
a nonce that is not this socket's challenge (DEVICE_NONCE_MISMATCH), a `signedAt` outside
the allowed skew (DEVICE_SIGNATURE_EXPIRED), and a signature that does not verify
(DEVICE_SIGNATURE_INVALID).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from aisopod.contracts.auth import DeviceProof, openclaw_signature_payloads, signature_payload
from aisopod.errors import Unauthenticated

MAX_SKEW_MS = 120_000
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


def b64url_decode(text: str) -> bytes:
    """base64url, padding optional; ValueError on anything else."""
    if not isinstance(text, str) or len(text) > 4096 or not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def device_id_of(raw_public_key: bytes) -> str:
    """The device id: lowercase hex sha256 of the raw public key."""
    return hashlib.sha256(raw_public_key).hexdigest()


def verify_device_proof(
    proof: DeviceProof,
    *,
    expected_nonce: str | None,
    client_id: str,
    role: str,
    scopes: list[str],
    now_ms: int,
    max_skew_ms: int = MAX_SKEW_MS,
    client_mode: str = "",
    platform: str = "",
    device_family: str = "",
) -> str:
    """The verified device id, or raise UNAUTHENTICATED with the failing check's code."""
    try:
        raw_key = b64url_decode(proof.public_key)
    except ValueError:
        raw_key = b""
    if len(raw_key) != ED25519_KEY_BYTES:
        raise Unauthenticated(
            "device public key must be a raw 32-byte Ed25519 key, base64url",
            code="DEVICE_KEY_INVALID",
        )
    # `cryptography` (~8 MiB of RSS) loads on the first device proof, not at start-up: an
    # idle gateway, or one whose clients use tokens only, never pays it (docs/deployment.md).
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        public_key = Ed25519PublicKey.from_public_bytes(raw_key)
    except ValueError:
        raise Unauthenticated("device public key is invalid", code="DEVICE_KEY_INVALID") from None
    device_id = device_id_of(raw_key)
    if not hmac.compare_digest(device_id.encode(), proof.id.encode()):
        raise Unauthenticated(
            "device id must be the sha256 of its public key", code="DEVICE_ID_MISMATCH"
        )
    if not expected_nonce or not hmac.compare_digest(proof.nonce.encode(), expected_nonce.encode()):
        raise Unauthenticated(
            "device proof is not for this connection's challenge", code="DEVICE_NONCE_MISMATCH"
        )
    if abs(now_ms - proof.signed_at) > max_skew_ms:
        raise Unauthenticated(
            f"device signature time is more than {max_skew_ms // 1000} s off the server clock",
            code="DEVICE_SIGNATURE_EXPIRED",
        )
    try:
        signature = b64url_decode(proof.signature)
    except ValueError:
        signature = b""
    payload = signature_payload(
        device_id=device_id,
        client_id=client_id,
        role=role,
        scopes=scopes,
        signed_at=proof.signed_at,
        nonce=expected_nonce,
    )
    payloads = [payload]
    if proof.signed_token is not None:
        # An OpenClaw client (its codec passes the token it signed): v2 or v3 strings.
        payloads.extend(
            openclaw_signature_payloads(
                device_id=device_id,
                client_id=client_id,
                client_mode=client_mode,
                role=role,
                scopes=scopes,
                signed_at=proof.signed_at,
                token=proof.signed_token,
                nonce=expected_nonce,
                platform=platform,
                device_family=device_family,
            )
        )
    if len(signature) == ED25519_SIGNATURE_BYTES:
        for candidate in payloads:
            try:
                public_key.verify(signature, candidate)
                return device_id
            except InvalidSignature:
                continue
    raise Unauthenticated("device signature does not verify", code="DEVICE_SIGNATURE_INVALID")
