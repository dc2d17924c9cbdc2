"""The edge proof check and the client address it allows."""

from __future__ import annotations

from aisopod.edgeproof import EdgeProof, client_address

TRUSTED = ("127.0.0.1/32",)


def test_only_the_exact_secret_proves() -> None:
    proof = EdgeProof("s3cret")
    assert proof.configured
    assert proof.check([(b"x-aisopod-edge", b"s3cret")])[0]
    assert not proof.check([(b"x-aisopod-edge", b"s3cre")])[0]
    assert not proof.check([(b"x-aisopod-edge", b"s3cret!")])[0]
    assert not proof.check([])[0]
    # A forged copy next to the real one makes the request unproven.
    doubled = [(b"x-aisopod-edge", b"s3cret"), (b"x-aisopod-edge", b"s3cret")]
    assert not proof.check(doubled)[0]


def test_a_service_without_a_secret_proves_nothing() -> None:
    proof = EdgeProof(None)
    assert not proof.configured
    assert not proof.check([(b"x-aisopod-edge", b"")])[0]
    assert not EdgeProof("").valid(b"")


def test_forwarded_for_is_read_with_the_proof() -> None:
    proof = EdgeProof("s")
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-aisopod-edge", b"s")]
    proven, forwarded = proof.check(headers)
    assert proven and forwarded == b"203.0.113.9"


def test_forwarded_for_is_believed_only_when_proven() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", TRUSTED, proven=True) == "203.0.113.9"
    assert client_address("127.0.0.1", "203.0.113.9", TRUSTED, proven=False) == "127.0.0.1"
    assert client_address("127.0.0.2", "203.0.113.9", TRUSTED, proven=True) == "127.0.0.2"
    assert client_address("127.0.0.1", None, TRUSTED, proven=True) == "127.0.0.1"
