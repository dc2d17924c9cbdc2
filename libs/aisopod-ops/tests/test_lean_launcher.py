"""The launcher's supervising process stays lean: start-up work in a forked child
(forked.py), the edge sync adopting what that child prepared and following the config and
the certificate without pydantic or `cryptography` (edgesync.py, tlsfiles.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from aisopod.config.model import GatewayConfig
from aisopod_ops.launcher import tls, tlsfiles
from aisopod_ops.launcher.edgesync import (
    CORS_FILE,
    RENEW_CHECK_S,
    TLS_FILE,
    EdgeOptions,
    EdgeSync,
    PreparedEdge,
)
from aisopod_ops.launcher.forked import ForkedError, run_forked


def test_forked_work_hands_back_its_result_and_keeps_its_imports() -> None:
    # A fresh interpreter: this test process has long imported everything.
    script = """
import sys
from aisopod_ops.launcher.forked import run_forked

def work():
    import pydantic  # noqa: F401
    return "written"

assert run_forked(work) == "written"
assert "pydantic" not in sys.modules, "the child's import reached the parent"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.stdout.decode().strip() == "ok", done.stderr.decode()


def test_forked_failure_raises_with_the_childs_error() -> None:
    def work() -> str:
        raise ValueError("a TLS certificate needs both its certificate and key file")

    with pytest.raises(ForkedError, match="needs both its certificate and key file"):
        run_forked(work)


def test_the_supervising_modules_load_neither_pydantic_nor_cryptography() -> None:
    script = """
import json
import sys
from aisopod_ops.cli import _modules
_modules(["stack"])
import aisopod_ops.launcher.stack
heavy_roots = ("pydantic", "pydantic_core", "cryptography", "yaml")
heavy_modules = ("aisopod.catalogue", "aisopod.config", "aisopod_ops.launcher.natsconf")
heavy = sorted(
    m for m in sys.modules
    if m.split(".")[0] in heavy_roots or m.startswith(heavy_modules)
    or m == "aisopod_ops.launcher.tls"
)
print(json.dumps(heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == []


def test_lean_fingerprint_equals_the_der_digest(tmp_path: Path) -> None:
    files = tls.ensure_self_signed(tmp_path)
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    assert tlsfiles.fingerprint(files.cert_file) == hashlib.sha256(der).hexdigest()
    (tmp_path / "broken.crt").write_text("not a certificate")
    with pytest.raises(ValueError):
        tlsfiles.fingerprint(tmp_path / "broken.crt")


def _options(tmp_path: Path) -> EdgeOptions:
    return EdgeOptions(dynamic_dir=tmp_path / "dynamic", tls_dir=tmp_path / "tls")


def test_adopted_edge_follows_config_and_certificate(tmp_path: Path) -> None:
    seed = GatewayConfig.model_validate({"cors": {"allowedOrigins": ["https://seed.example"]}})
    preparer = EdgeSync(_options(tmp_path))
    preparer.prepare(seed)
    prepared = PreparedEdge.from_json(preparer.prepared().to_json())
    assert prepared.origins == ["https://seed.example"]
    assert prepared.renewal_due_at is not None and prepared.renewal_due_at > time.time()

    follower = EdgeSync(_options(tmp_path))
    follower.adopt(prepared)
    assert follower.files == preparer.files
    assert follower.check_certificate() is False  # nothing changed since the child wrote it
    cors_file = tmp_path / "dynamic" / CORS_FILE
    # The stored document names what the child wrote: nothing is rendered or rewritten.
    written = cors_file.stat().st_mtime_ns, cors_file.stat().st_ino
    assert follower.apply_cors(["https://seed.example"], seed.cors.max_age_s) is False
    assert (cors_file.stat().st_mtime_ns, cors_file.stat().st_ino) == written
    # A stored document: its cors section applies; an invalid one keeps what was there.
    stored = GatewayConfig.model_validate({"cors": {"allowedOrigins": ["https://B.example/"]}})
    follower._apply_document(json.dumps(stored.document()).encode())
    assert follower.origins == ["https://b.example"] and follower.config_applied.is_set()
    headers = yaml.safe_load(cors_file.read_text())["http"]["middlewares"]["cors"]["headers"]
    assert headers["accessControlAllowOriginList"] == ["https://b.example"]
    follower._apply_document(b'{"cors": {"maxAgeS": -5}}')
    follower._apply_document(b"not json")
    assert follower.origins == ["https://b.example"]
    assert "https://b.example" in cors_file.read_text()
    # A replaced certificate is checked and served.
    tls_text = (tmp_path / "dynamic" / TLS_FILE).read_text()
    tls.issue_server_certificate(tmp_path / "tls")
    assert follower.check_certificate() is True
    assert (tmp_path / "dynamic" / TLS_FILE).read_text() != tls_text


def test_renewal_waits_for_its_due_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    preparer = EdgeSync(_options(tmp_path))
    preparer.prepare()
    follower = EdgeSync(_options(tmp_path))
    follower.adopt(preparer.prepared())
    issued: list[Path] = []
    ensure = tls.ensure_self_signed

    def recording(tls_dir: Path, names: Iterable[str] = ()) -> tlsfiles.TlsFiles:
        issued.append(tls_dir)
        return ensure(tls_dir, names)

    monkeypatch.setattr(tls, "ensure_self_signed", recording)
    assert follower.check_certificate() is False  # checked hourly only
    follower._renew_checked_at -= RENEW_CHECK_S + 1  # an hour on: checked, not due yet
    assert follower.check_certificate() is False
    assert issued == []
    # Due: tls.py is asked (and reissues when the certificate really is that old).
    follower._renewal_due_at = time.time() - 1
    follower._renew_checked_at -= RENEW_CHECK_S + 1
    follower.check_certificate()
    assert issued == [tmp_path / "tls"]
    assert follower._renewal_due_at is not None and follower._renewal_due_at > time.time()
