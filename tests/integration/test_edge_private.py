"""A private stack with the user's own certificate and HTTP→HTTPS redirect: the options
the shared stack does not use. One stack for all of it (each costs seconds)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from aisopod_ops.launcher import tls
from tests.conftest import start_local_stack, stop_local_stack

pytestmark = pytest.mark.integration


@dataclass
class PrivateStack:
    info: dict
    user_dir: Path  # the user's certificate files, signed by their own CA
    launcher_log: Path


def _served(https_url: str, ca: Path) -> str:
    parts = urlsplit(https_url)
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="gw.test") as conn,
    ):
        return hashlib.sha256(conn.getpeercert(binary_form=True) or b"").hexdigest()


def _until(condition, what: str, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    root = tmp_path_factory.mktemp("private-edge")
    user_dir = root / "user-tls"
    files = tls.issue_server_certificate(user_dir, ["gw.test"])
    state = root / "state"
    state.mkdir()
    proc, info = start_local_stack(
        state,
        "--replicas",
        "1",
        "--tls-cert",
        str(files.cert_file),
        "--tls-key",
        str(files.key_file),
        "--redirect-https",
    )
    try:
        yield PrivateStack(info, user_dir, root / "state-launcher.log")
    finally:
        assert stop_local_stack(proc) == 0


def test_plain_http_redirects_to_https(private: PrivateStack) -> None:
    https_port = urlsplit(private.info["https_url"]).port
    response = httpx.get(f"{private.info['http_url']}/v1/models?x=1", timeout=5)
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1:{https_port}/v1/models?x=1"
    # Other methods get 308, so a client resends the same method and body to HTTPS.
    posted = httpx.post(f"{private.info['http_url']}/v1/chat/completions", json={}, timeout=5)
    assert posted.status_code == 308
    assert posted.headers["location"] == f"https://127.0.0.1:{https_port}/v1/chat/completions"


def test_users_certificate_is_served_and_no_ca_is_generated(private: PrivateStack) -> None:
    ca = private.user_dir / tls.CA_CERT
    assert private.info["ca_file"] is None
    assert not (Path(private.info["state_dir"]) / "tls" / tls.SERVER_CERT).exists()
    assert _served(private.info["https_url"], ca) == tls.fingerprint(
        private.user_dir / tls.SERVER_CERT
    )
    health = httpx.get(
        f"{private.info['https_url']}/health", verify=ssl.create_default_context(cafile=str(ca))
    )
    assert health.status_code == 200


def test_renewed_user_certificate_is_picked_up_only_once_consistent(
    private: PrivateStack, tmp_path: Path
) -> None:
    ca = private.user_dir / tls.CA_CERT
    url = private.info["https_url"]
    before = _served(url, ca)
    # The renewal is prepared elsewhere with the same CA, then copied in: certificate
    # first, key second, as a careless deploy script would.
    staging = tmp_path / "staging"
    shutil.copytree(private.user_dir, staging)
    renewed = tls.issue_server_certificate(staging, ["gw.test"])
    shutil.copy(renewed.cert_file, private.user_dir / tls.SERVER_CERT)
    _until(
        lambda: "not consistent yet" in private.launcher_log.read_text(),
        "the edge sync to notice the half-replaced pair",
    )
    assert _served(url, ca) == before  # a mismatched pair is never handed to Traefik
    shutil.copy(renewed.key_file, private.user_dir / tls.SERVER_KEY)
    wanted = tls.fingerprint(renewed.cert_file)
    _until(lambda: _served(url, ca) == wanted, "the renewed certificate to be served")
