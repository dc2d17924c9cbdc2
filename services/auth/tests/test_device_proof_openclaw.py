"""OpenClaw's device signature strings: v2 (Control UI) and v3 (node hosts), beside v1."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aisopod.contracts.auth import DeviceProof
from aisopod.errors import Unauthenticated
from aisopod_auth.device_proof import verify_device_proof

NOW = 1_764_240_000_000
NONCE = "0f1e2d3c-nonce"
TOKEN = "shared-token"
UI_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.questions"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(text: str, key: Ed25519PrivateKey, *, token: str | None = TOKEN) -> DeviceProof:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    did = hashlib.sha256(raw).hexdigest()
    return DeviceProof(
        id=did,
        public_key=b64(raw),
        signature=b64(key.sign(text.replace("<id>", did).encode())),
        signed_at=NOW,
        nonce=NONCE,
        signed_token=token,
    )


def verify(proof: DeviceProof, *, client_id: str, mode: str, **client: str) -> str:
    return verify_device_proof(
        proof,
        expected_nonce=NONCE,
        client_id=client_id,
        role=client.pop("role", "operator"),
        scopes=UI_SCOPES if client_id == "openclaw-control-ui" else [],
        now_ms=NOW,
        client_mode=mode,
        **client,
    )


def test_v2_control_ui_string_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    text = (
        f"v2|<id>|openclaw-control-ui|webchat|operator|{','.join(UI_SCOPES)}|{NOW}|{TOKEN}|{NONCE}"
    )
    proof = signed(text, key)
    assert verify(proof, client_id="openclaw-control-ui", mode="webchat") == proof.id


def test_v3_node_host_string_lowercases_platform_and_family() -> None:
    key = Ed25519PrivateKey.generate()
    text = f"v3|<id>|node-host|node|node||{NOW}||{NONCE}|linux|linux"
    proof = signed(text, key, token="")
    device = verify(
        proof,
        client_id="node-host",
        mode="node",
        role="node",
        platform=" Linux ",
        device_family="Linux",
    )
    assert device == proof.id


def test_v2_with_another_token_does_not_verify() -> None:
    key = Ed25519PrivateKey.generate()
    text = f"v2|<id>|openclaw-control-ui|webchat|operator|{','.join(UI_SCOPES)}|{NOW}|other|{NONCE}"
    with pytest.raises(Unauthenticated) as err:
        verify(signed(text, key), client_id="openclaw-control-ui", mode="webchat")
    assert err.value.detail_code == "DEVICE_SIGNATURE_INVALID"


def test_v2_strings_need_the_signed_token_from_the_openclaw_codec() -> None:
    key = Ed25519PrivateKey.generate()
    text = (
        f"v2|<id>|openclaw-control-ui|webchat|operator|{','.join(UI_SCOPES)}|{NOW}|{TOKEN}|{NONCE}"
    )
    with pytest.raises(Unauthenticated):
        verify(signed(text, key, token=None), client_id="openclaw-control-ui", mode="webchat")
