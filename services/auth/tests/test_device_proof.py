"""Device proof verification: the canonical string, and one error code per failed check."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aisopod.contracts.auth import DeviceProof, signature_payload
from aisopod.errors import Unauthenticated
from aisopod_auth.device_proof import MAX_SKEW_MS, b64url_decode, device_id_of, verify_device_proof

NOW = 1_764_240_000_000
NONCE = "n-0123"
SCOPES = ["operator.read", "operator.write"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make(
    key: Ed25519PrivateKey,
    *,
    signed_at: int = NOW,
    nonce: str = NONCE,
    sign_nonce: str | None = None,
    scopes: list[str] = SCOPES,
    device_id: str | None = None,
    public_key: str | None = None,
) -> DeviceProof:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    did = device_id or hashlib.sha256(raw).hexdigest()
    payload = signature_payload(
        device_id=did,
        client_id="cli",
        role="operator",
        scopes=scopes,
        signed_at=signed_at,
        nonce=sign_nonce or nonce,
    )
    return DeviceProof(
        id=did,
        public_key=b64(raw) if public_key is None else public_key,
        signature=b64(key.sign(payload)),
        signed_at=signed_at,
        nonce=nonce,
    )


def check(proof: DeviceProof, *, scopes: list[str] = SCOPES, nonce: str | None = NONCE) -> str:
    return verify_device_proof(
        proof, expected_nonce=nonce, client_id="cli", role="operator", scopes=scopes, now_ms=NOW
    )


def code_of(proof: DeviceProof, **kwargs: object) -> str:
    with pytest.raises(Unauthenticated) as err:
        check(proof, **kwargs)  # type: ignore[arg-type]
    return err.value.detail_code


def test_canonical_string_is_the_pinned_one() -> None:
    payload = signature_payload(
        device_id="ab" * 32,
        client_id="aisopod-control-ui",
        role="operator",
        scopes=["operator.admin", "operator.read"],
        signed_at=1764240000123,
        nonce="n-0123",
    )
    expected = f"v1|{'ab' * 32}|aisopod-control-ui|operator|operator.admin,operator.read|"
    assert payload == f"{expected}1764240000123|n-0123".encode()


def test_a_valid_proof_yields_the_device_id() -> None:
    key = Ed25519PrivateKey.generate()
    proof = make(key)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert check(proof) == device_id_of(raw) == proof.id


def test_signed_at_within_the_skew_either_way() -> None:
    key = Ed25519PrivateKey.generate()
    assert check(make(key, signed_at=NOW - MAX_SKEW_MS))
    assert check(make(key, signed_at=NOW + MAX_SKEW_MS))


@pytest.mark.parametrize("offset", [MAX_SKEW_MS + 1, -(MAX_SKEW_MS + 1)])
def test_signed_at_outside_the_skew(offset: int) -> None:
    proof = make(Ed25519PrivateKey.generate(), signed_at=NOW + offset)
    assert code_of(proof) == "DEVICE_SIGNATURE_EXPIRED"


def test_bad_signature() -> None:
    proof = make(Ed25519PrivateKey.generate())
    forged = proof.model_copy(update={"signature": b64(bytes(64))})
    assert code_of(forged) == "DEVICE_SIGNATURE_INVALID"
    short = proof.model_copy(update={"signature": b64(bytes(10))})
    assert code_of(short) == "DEVICE_SIGNATURE_INVALID"
    garbage = proof.model_copy(update={"signature": "***"})
    assert code_of(garbage) == "DEVICE_SIGNATURE_INVALID"


def test_signature_by_another_key() -> None:
    proof = make(Ed25519PrivateKey.generate())
    other = make(Ed25519PrivateKey.generate())
    assert code_of(proof.model_copy(update={"signature": other.signature})) == (
        "DEVICE_SIGNATURE_INVALID"
    )


def test_nonce_of_another_socket() -> None:
    key = Ed25519PrivateKey.generate()
    assert code_of(make(key, nonce="other")) == "DEVICE_NONCE_MISMATCH"
    assert code_of(make(key), nonce=None) == "DEVICE_NONCE_MISMATCH"
    # Claims this socket's nonce but signed another: the signature does not verify.
    assert code_of(make(key, sign_nonce="other")) == "DEVICE_SIGNATURE_INVALID"


def test_scopes_are_signed_in_the_order_sent() -> None:
    proof = make(Ed25519PrivateKey.generate())
    assert code_of(proof, scopes=list(reversed(SCOPES))) == "DEVICE_SIGNATURE_INVALID"
    assert code_of(proof, scopes=["operator.admin"]) == "DEVICE_SIGNATURE_INVALID"


def test_id_must_be_the_sha256_of_the_key() -> None:
    key = Ed25519PrivateKey.generate()
    assert code_of(make(key, device_id="0" * 64)) == "DEVICE_ID_MISMATCH"
    upper = make(key)
    assert code_of(upper.model_copy(update={"id": upper.id.upper()})) == "DEVICE_ID_MISMATCH"


def test_wrong_key_types() -> None:
    key = Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    uncompressed = p256.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    compressed = p256.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    for bad in (b64(uncompressed), b64(compressed), b64(bytes(31)), "not base64 !", ""):
        assert code_of(make(key, public_key=bad)) == "DEVICE_KEY_INVALID"


def test_b64url_accepts_missing_padding_only() -> None:
    assert b64url_decode(b64(b"\x00\x01\x02\x03")) == b"\x00\x01\x02\x03"
    with pytest.raises(ValueError):
        b64url_decode("x" * 5000)
    with pytest.raises(ValueError):
        b64url_decode("AAAA+/==")  # the standard alphabet is not base64url
    with pytest.raises(ValueError):
        b64url_decode("AA AA")
