"""HTTPS and WSS through Traefik with the stack's own CA, and certificate reload."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from cryptography import x509

from aisopod_ops.launcher import tls

pytestmark = pytest.mark.integration


def _ca(stack) -> Path:
    return stack.state_dir / "tls" / tls.CA_CERT


def _trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _served_fingerprint(https_url: str, ca: Path, server_name: str = "127.0.0.1") -> str:
    parts = urlsplit(https_url)
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_https_with_the_generated_ca(stack) -> None:
    ca = _ca(stack)
    response = httpx.get(f"{stack.https_url}/health", verify=_trust(ca), timeout=5)
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.headers["x-content-type-options"] == "nosniff"
    # The same certificate answers for the name `localhost`, and only the CA vouches for it.
    port = urlsplit(stack.https_url).port
    assert httpx.get(f"https://localhost:{port}/health", verify=_trust(ca), timeout=5).is_success
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{stack.https_url}/health", timeout=5)  # system trust store only


def test_generated_key_material_is_private_and_covers_loopback(stack) -> None:
    tls_dir = stack.state_dir / "tls"
    for key in (tls.CA_KEY, tls.SERVER_KEY):
        assert stat.S_IMODE((tls_dir / key).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tls_dir / tls.SERVER_CERT).read_bytes())
    assert {"localhost", "127.0.0.1", "::1"} <= tls.certificate_names(cert)


async def test_wss_handshake_over_tls(stack) -> None:
    wss_url = stack.https_url.replace("https://", "wss://") + "/ws"
    context = ssl.create_default_context(cafile=str(_ca(stack)))
    try:
        async with websockets.connect(wss_url, ssl=context, open_timeout=5) as ws:
            # ws-gateway speaks first (docs/protocol/websocket.md): the challenge of the handshake.
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert frame["method"] == "connect.challenge"
            assert "nonce" in json.dumps(frame["params"])
    except websockets.InvalidStatus as refused:
        # Until the ws-gateway and ratelimit services answer the upgrade, Traefik does:
        # the TLS handshake with our CA succeeded and the upgrade got an HTTP reply.
        assert refused.response.status_code in (401, 404, 429, 502, 503)


def test_certificate_reload_without_restart(stack) -> None:
    """A new certificate in place is served within seconds: the edge sync notices the
    file change and rewrites tls.yml, which makes Traefik reload it."""
    ca = _ca(stack)
    tls_dir = stack.state_dir / "tls"
    before = _served_fingerprint(stack.https_url, ca)
    reissued = tls.issue_server_certificate(tls_dir, tls.current_names(tls_dir))
    wanted = tls.fingerprint(reissued.cert_file)
    assert wanted != before
    deadline = time.monotonic() + 30
    served = before
    while served != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        served = _served_fingerprint(stack.https_url, ca)
    assert served == wanted
    assert httpx.get(f"{stack.https_url}/health", verify=_trust(ca), timeout=5).is_success
