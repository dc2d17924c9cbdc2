"""Every auth mode × valid / invalid / missing credential, through both entry points: NATS
`auth.verify` as the ws-gateway handshake asks it, and the HTTP API through Traefik (where
http-api asks `auth.verify` with the request's bearer and no scopes: `http_request`).

Modes change through the live configuration (KV `config`, written with the NATS admin
user) and are restored afterwards. Failing attempts come from addresses no other test uses,
because failures lock an address out.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from aisopod.config.sections.auth import hash_password
from tests.integration.auth_support import (
    Admin,
    Device,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration

ALL = [
    "operator.admin",
    "operator.approvals",
    "operator.pairing",
    "operator.read",
    "operator.write",
]


@pytest.fixture
async def http(stack) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client of the stack's Traefik and the URL of a route that needs a credential."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client, f"{stack.http_url}/status"


def bearer(value: str, ip: str | None = None) -> dict[str, str]:
    """A credential from `ip` (Traefik trusts the loopback peer's X-Forwarded-For)."""
    headers = {"Authorization": f"Bearer {value}"}
    if ip:
        headers["X-Forwarded-For"] = ip
    return headers


def http_request(ip: str, credential: str | None) -> dict[str, object]:
    """`auth.verify` exactly as http-api asks it for an API request from `ip`."""
    request: dict[str, object] = {"clientIp": ip, "directLoopback": False}
    if credential is not None:
        request["bearer"] = credential
    return request


async def test_token_mode(stack, admin: Admin, http) -> None:
    client, url = http
    asked = ["operator.write", "operator.read", "operator.bogus"]
    result = await admin.verify(
        verify_request(ip=unique_ip(), token=stack.admin_token, scopes=asked)
    )
    assert result["principal"] == {
        "id": "admin",
        "role": "operator",
        "scopes": ["operator.read", "operator.write"],
        "authMethod": "token",
        "deviceId": None,
        "nodeId": None,
    }
    assert result["deviceToken"] is None
    # The upgrade request's bearer counts when the connect frame carries no credential.
    via_bearer = await admin.verify(verify_request(ip=unique_ip(), bearer=stack.admin_token))
    assert via_bearer["principal"]["scopes"] == []  # nothing asked, nothing granted

    wrong = await admin.verify_error(verify_request(ip=unique_ip(), token=secrets.token_urlsafe()))
    assert (wrong.name, wrong.detail_code) == ("UNAUTHENTICATED", "AUTH_TOKEN_MISMATCH")
    missing = await admin.verify_error(verify_request(ip=unique_ip()))
    assert (missing.name, missing.detail_code) == ("UNAUTHENTICATED", "AUTH_MISSING")
    password = await admin.verify_error(verify_request(ip=unique_ip(), password="hunter2-x"))
    assert password.detail_code == "AUTH_PASSWORD_MISMATCH"

    ip = unique_ip()
    assert (await client.get(url, headers=bearer(stack.admin_token, ip))).status_code == 200
    ok = (await admin.verify(http_request(ip, stack.admin_token)))["principal"]
    assert (ok["id"], ok["role"], ok["authMethod"]) == ("admin", "operator", "token")
    assert ok["scopes"] == ALL  # an API request gets all the credential allows
    assert ok["deviceId"] is None

    bad = await client.get(url, headers=bearer(secrets.token_urlsafe(), unique_ip()))
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"].startswith("Bearer")
    assert bad.json() == {
        "ok": False,
        "error": {
            "type": "unauthenticated",
            "message": "invalid token",
            "code": "AUTH_TOKEN_MISMATCH",
        },
    }
    none = await client.get(url, headers={"X-Forwarded-For": unique_ip()})
    assert none.status_code == 401
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"]["code"] == "AUTH_MISSING"


async def test_openai_error_shape_under_v1(stack, http) -> None:
    client, _ = http
    headers = bearer(secrets.token_urlsafe(), unique_ip())
    response = await client.get(f"{stack.http_url}/v1/chat/completions", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    models = await client.get(f"{stack.http_url}/v1/models?x=1")
    assert models.status_code == 401 and "error" in models.json()
    assert "ok" not in models.json()


async def test_password_mode(stack, admin: Admin, http) -> None:
    client, url = http
    password = remember(f"correct horse {secrets.token_hex(6)}")
    assert password is not None

    def to_password(document: dict) -> None:
        document["auth"].update(mode="password", passwordHash=hash_password(password))

    async with admin.live_config(to_password):
        result = await admin.verify(
            verify_request(ip=unique_ip(), password=password, scopes=["operator.read"])
        )
        assert result["principal"]["authMethod"] == "password"
        assert result["principal"]["scopes"] == ["operator.read"]
        wrong = await admin.verify_error(verify_request(ip=unique_ip(), password=password + "!"))
        assert wrong.detail_code == "AUTH_PASSWORD_MISMATCH"
        missing = await admin.verify_error(verify_request(ip=unique_ip()))
        assert missing.detail_code == "AUTH_MISSING"
        # The bootstrap token still rescues a password gateway.
        rescue = await admin.verify(verify_request(ip=unique_ip(), token=stack.admin_token))
        assert rescue["principal"]["id"] == "admin"

        ok = await client.get(url, headers=bearer(password, unique_ip()))
        assert ok.status_code == 200
        ok_principal = (await admin.verify(http_request(unique_ip(), password)))["principal"]
        assert ok_principal["authMethod"] == "password"
        bad = await client.get(url, headers=bearer("not-the-password", unique_ip()))
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "AUTH_PASSWORD_MISMATCH"
        missing_http = await client.get(url, headers={"X-Forwarded-For": unique_ip()})
        assert missing_http.status_code == 401


async def _paired_device_token(admin: Admin, device: Device, scopes: list[str]) -> str:
    """Pair `device` by proof alone (device_token mode) and return its first token."""
    ip = unique_ip()
    refused = await admin.verify_error(verify_request(ip=ip, device=device, scopes=scopes))
    assert refused.name == "NOT_PAIRED"
    await admin.call("device.pair.approve", {"requestId": refused.data["requestId"]})
    hello = await admin.verify(verify_request(ip=ip, device=device, scopes=scopes))
    token = remember(hello["deviceToken"])
    assert token
    assert hello["principal"]["deviceId"] == device.id
    return token


async def test_device_token_mode(stack, admin: Admin, http) -> None:
    client, url = http
    device = Device()
    scopes = ["operator.read", "operator.write"]

    def to_device_token(document: dict) -> None:
        document["auth"]["mode"] = "device_token"

    async with admin.live_config(to_device_token):
        token = await _paired_device_token(admin, device, scopes)
        result = await admin.verify(
            verify_request(ip=unique_ip(), device_token=token, scopes=["operator.read"])
        )
        assert result["principal"] == {
            "id": f"device:{device.id}",
            "role": "operator",
            "scopes": ["operator.read"],
            "authMethod": "device_token",
            "deviceId": device.id,
            "nodeId": None,
        }
        wrong = await admin.verify_error(
            verify_request(ip=unique_ip(), device_token=secrets.token_urlsafe(32))
        )
        assert wrong.detail_code == "AUTH_DEVICE_TOKEN_INVALID"
        missing = await admin.verify_error(verify_request(ip=unique_ip()))
        assert missing.detail_code == "AUTH_MISSING"
        # The shared secret is refused, except to the bootstrap admin over direct loopback.
        remote_admin = await admin.verify_error(
            verify_request(ip=unique_ip(), token=stack.admin_token)
        )
        assert remote_admin.detail_code == "AUTH_TOKEN_MISMATCH"
        local_admin = await admin.verify(
            verify_request(ip="127.0.0.1", token=stack.admin_token, direct_loopback=True)
        )
        assert local_admin["principal"]["id"] == "admin"

        ok = await client.get(url, headers=bearer(token, unique_ip()))
        assert ok.status_code == 200
        ok_principal = (await admin.verify(http_request(unique_ip(), token)))["principal"]
        assert ok_principal["deviceId"] == device.id
        assert ok_principal["scopes"] == ["operator.read", "operator.write"]
        bad = await client.get(url, headers=bearer(secrets.token_urlsafe(32), unique_ip()))
        assert bad.status_code == 401
        assert (await client.get(url, headers={"X-Forwarded-For": unique_ip()})).status_code == 401
        remote = await client.get(url, headers=bearer(stack.admin_token, unique_ip()))
        assert remote.status_code == 401
        # No proxy hop before Traefik: the client is loopback itself.
        local = await client.get(url, headers=bearer(stack.admin_token))
        assert local.status_code == 200


async def test_none_mode(stack, admin: Admin, http) -> None:
    client, url = http

    def to_none(document: dict) -> None:
        document["auth"]["mode"] = "none"

    async with admin.live_config(to_none):
        anyone = await admin.verify(verify_request(ip="127.0.0.1", scopes=["operator.read"]))
        assert anyone["principal"]["id"] == "anonymous"
        assert anyone["principal"]["authMethod"] == "none"
        assert anyone["principal"]["scopes"] == ["operator.read"]
        wrong = await admin.verify(verify_request(ip="::1", token="whatever-it-is"))
        assert wrong["principal"]["id"] == "anonymous"
        ok = await client.get(url, headers={"X-Forwarded-For": "127.0.0.1"})
        assert ok.status_code == 200
        local = {"clientIp": "127.0.0.1", "directLoopback": True}  # as http-api asks it
        anonymous = (await admin.verify(local))["principal"]
        assert anonymous["id"] == "anonymous" and anonymous["scopes"] == ALL
        assert (await client.get(url, headers=bearer("junk", "127.0.0.1"))).status_code == 200
        # Only this machine's clients are the anonymous operator (a tunnel, a local proxy).
        remote = await admin.verify_error(verify_request(ip=unique_ip()))
        assert remote.detail_code == "AUTH_MODE_REFUSED"
        assert (await client.get(url, headers={"X-Forwarded-For": unique_ip()})).status_code == 401

    def to_forced_none(document: dict) -> None:
        document["auth"]["mode"] = "none"
        document["auth"]["allowInsecureNoAuth"] = True

    async with admin.live_config(to_forced_none):
        forced = await admin.verify(verify_request(ip=unique_ip()))
        assert forced["principal"]["id"] == "anonymous"

    async with admin.live_config(to_none):
        refused = _start_auth_with_public_url(stack, "http://192.0.2.10:8080")
        assert refused.returncode != 0
        assert "allowInsecureNoAuth" in refused.stderr


def _start_auth_with_public_url(stack, public_url: str) -> subprocess.CompletedProcess[str]:
    """Run a second auth instance that claims a non-loopback public URL (it binds loopback
    all the same); in `none` mode it must refuse to start."""
    env = {
        **os.environ,
        "AISOPOD_HOST": "127.0.0.1",
        "AISOPOD_PORT": "0",
        "AISOPOD_INSTANCE": f"auth-refused-{int(time.time())}",
        "AISOPOD_NATS_URL": stack.nats_url,
        "AISOPOD_NATS_USER": "auth",
        "AISOPOD_NATS_PASSWORD_FILE": str(stack.state_dir / "secrets" / "nats-auth.password"),
        "AISOPOD_PUBLIC_URL": public_url,
    }
    env.pop("AISOPOD_ADMIN_TOKEN_FILE", None)
    return subprocess.run(
        [sys.executable, "-m", "aisopod_auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
