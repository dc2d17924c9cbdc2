"""The edge's TLS material: local CA, server certificate, the user's certificate."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from aisopod_ops.launcher import tls


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_names_always_cover_loopback_and_are_normalized() -> None:
    names = tls.normalize_names(["App.Example.", "0.0.0.0", "::", "[::1]", "10.0.0.1", ""])
    assert names == ["localhost", "127.0.0.1", "::1", "app.example", "10.0.0.1"]


def test_self_signed_certificate_is_signed_by_the_ca_and_keys_are_private(
    tmp_path: Path,
) -> None:
    files = tls.ensure_self_signed(tmp_path, ["gw.example"])
    assert files.ca_file is not None
    assert _mode(files.key_file) == 0o600
    assert _mode(tmp_path / tls.CA_KEY) == 0o600
    assert _mode(files.ca_file) == 0o644
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    assert tls.certificate_names(cert) == {"localhost", "127.0.0.1", "::1", "gw.example"}
    # A TLS client trusting only the CA accepts the pair (the same check httpx makes).
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.cert_file, files.key_file)
    client = ssl.create_default_context(cafile=str(files.ca_file))
    assert client.verify_mode == ssl.CERT_REQUIRED
    ca = x509.load_pem_x509_certificate(files.ca_file.read_bytes())
    cert.verify_directly_issued_by(ca)


def test_certificate_is_kept_until_names_change_and_the_ca_is_kept(tmp_path: Path) -> None:
    first = tls.ensure_self_signed(tmp_path, ["a.example"])
    ca_before = first.ca_file.read_bytes() if first.ca_file else b""
    fingerprint = tls.fingerprint(first.cert_file)
    assert tls.fingerprint(tls.ensure_self_signed(tmp_path, ["a.example"]).cert_file) == (
        fingerprint
    )
    renamed = tls.ensure_self_signed(tmp_path, ["b.example"])
    renamed_fingerprint = tls.fingerprint(renamed.cert_file)
    assert renamed_fingerprint != fingerprint
    assert tls.current_names(tmp_path) == {"localhost", "127.0.0.1", "::1", "b.example"}
    assert renamed.ca_file is not None and renamed.ca_file.read_bytes() == ca_before
    reissued = tls.issue_server_certificate(tmp_path, ["b.example"])
    assert tls.fingerprint(reissued.cert_file) != renamed_fingerprint


def test_user_certificate_must_match_its_key(tmp_path: Path) -> None:
    one = tls.issue_server_certificate(tmp_path / "one")
    other = tls.issue_server_certificate(tmp_path / "other")
    assert tls.user_certificate(one.cert_file, one.key_file).ca_file is None
    with pytest.raises(ValueError, match="does not belong"):
        tls.user_certificate(one.cert_file, other.key_file)
    with pytest.raises(ValueError, match="TLS certificate"):
        tls.user_certificate(tmp_path / "missing.pem", one.key_file)
