"""The HTTP edge: identity headers a client sends never reach a backend, X-Forwarded-For
from an untrusted peer is ignored, and brute force is locked out per client IP.

The identity-header test runs a real Traefik with the gateway's own middleware definitions
(`aisopod_ops.launcher.traefik`) in front of a header-echoing backend, with the stack's auth
service as forwardAuth; the ratelimit hop is left out of that router (its owner tests it),
so the test sees exactly what auth and the strip middleware let through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from aisopod.errors import RateLimited
from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.paths import binary
from aisopod_ops.launcher.ports import pick
from tests.integration.auth_support import (
    Admin,
    admin_session,
    auth_verify_url,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(stack) -> AsyncIterator[Admin]:
    remember(stack.admin_token)
    async with admin_session(stack) as session:
        yield session


# -- a backend that shows what reached it ----------------------------------------------
class Echo(ThreadingHTTPServer):
    seen: list[dict[str, str]]


class _EchoHandler(BaseHTTPRequestHandler):
    server: Echo

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path != "/ready":
            self.server.seen.append({"path": self.path, **headers})
        body = json.dumps(headers).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[Echo]:
    server = Echo(("127.0.0.1", 0), _EchoHandler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def edge(stack, echo: Echo, tmp_path: Path) -> Iterator[str]:
    """A Traefik with the gateway's API router (cors → strip-identity → auth → headers)
    in front of the echo backend; returns its base URL."""
    auth_base = auth_verify_url(stack).removesuffix("/verify")
    echo_url = f"http://127.0.0.1:{echo.server_address[1]}"
    port, ping = pick(0), pick(0)
    dynamic_dir = tmp_path / "dynamic"
    dynamic_dir.mkdir()
    static = traefik.static_config(
        http_address=f"127.0.0.1:{port}",
        https_address=None,
        ping_address=f"127.0.0.1:{ping}",
        dynamic_dir=str(dynamic_dir),
        trusted_ips=["127.0.0.1/32", "::1/128"],
    )
    upstreams = traefik.Upstreams(
        ws_gateway=[echo_url],
        http_api=[echo_url],
        static_ui=[echo_url],
        auth=[auth_base],
        ratelimit=[auth_base],
    )
    dynamic = traefik.dynamic_config(upstreams, entry_points=["web"])
    # CORS lives in its own (live) file in a stack; here it joins the routes.
    dynamic["http"]["middlewares"].update(traefik.cors_config([])["http"]["middlewares"])
    routers = dynamic["http"]["routers"]
    for name in ("api", "api-write"):
        routers[name]["middlewares"] = [m for m in routers[name]["middlewares"] if m != "ratelimit"]
    api = routers["api"]
    assert api["middlewares"] == [
        "cors",
        "encoded-strict",
        "strip-identity",
        "auth",
        "security-headers",
        "retry",
    ]
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    (dynamic_dir / "routes.yml").write_text(yaml.safe_dump(dynamic))
    log = open(tmp_path / "traefik.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [binary("traefik"), f"--configFile={tmp_path / 'traefik.yml'}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/status", timeout=1, trust_env=False).status_code == 401:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError((tmp_path / "traefik.log").read_text()[-2000:])
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


SPOOFED = {
    "X-Aisopod-Principal": "mallory",
    "X-Aisopod-Role": "operator",
    "X-Aisopod-Scopes": "operator.admin",
    "X-Aisopod-Auth-Method": "token",
    "X-Aisopod-Device-Id": "f" * 64,
    "X-Aisopod-Client-Ip": "10.0.0.1",
}


async def test_spoofed_identity_headers_never_reach_the_backend(
    stack, admin: Admin, echo: Echo, edge: str
) -> None:
    created = await admin.request("token.create", {"scopes": ["operator.read"], "name": "edge"})
    reader = remember(created["token"])
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        spoof_only = await client.get(f"{edge}/status", headers=SPOOFED)
        assert spoof_only.status_code == 401
        assert len(spoof_only.headers["x-request-id"]) == 32
        quoted = await client.get(f"{edge}/status", headers={"X-Request-Id": "case-7"})
        assert quoted.status_code == 401 and quoted.headers["x-request-id"] == "case-7"
        assert echo.seen == []  # refused at the edge: the backend never heard of it

        as_reader = await client.get(
            f"{edge}/status", headers={**SPOOFED, "Authorization": f"Bearer {reader}"}
        )
        assert as_reader.status_code == 200
        seen = echo.seen[-1]
        assert seen["x-aisopod-principal"] == f"token:{created['tokenId']}"
        assert seen["x-aisopod-scopes"] == "operator.read"
        assert seen["x-aisopod-role"] == "operator"
        assert seen["x-aisopod-client-ip"] == "127.0.0.1"
        assert "x-aisopod-device-id" not in seen  # auth set none: the client's copy is gone

        as_admin = await client.get(
            f"{edge}/v1/models",
            headers={**SPOOFED, "Authorization": f"Bearer {stack.admin_token}"},
        )
        assert as_admin.status_code == 200
        assert echo.seen[-1]["x-aisopod-principal"] == "admin"
        assert echo.seen[-1]["path"] == "/v1/models"
    await admin.request("token.revoke", {"tokenId": created["tokenId"]})


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(stack, admin: Admin) -> None:
    url = auth_verify_url(stack)
    claimed = "203.0.113.9"
    headers = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": claimed}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        trusted = await client.get(url, headers=headers)
        assert trusted.headers["x-aisopod-client-ip"] == claimed  # loopback proxies are trusted

        def distrust_loopback(document: dict) -> None:
            document["gateway"]["trustedProxies"] = ["10.255.0.0/16"]

        async with admin.live_config(distrust_loopback):
            untrusted = await client.get(url, headers=headers)
            assert untrusted.status_code == 200
            assert untrusted.headers["x-aisopod-client-ip"] == "127.0.0.1"


# -- lockout ---------------------------------------------------------------------------
async def test_http_brute_force_locked_out_after_ten_failures(stack, admin: Admin) -> None:
    url = auth_verify_url(stack)
    attacker, bystander = unique_ip(), unique_ip()
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        for _ in range(10):
            guess = {
                "Authorization": f"Bearer {secrets.token_urlsafe()}",
                "X-Forwarded-For": attacker,
            }
            assert (await client.get(url, headers=guess)).status_code == 401
        right = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": attacker}
        locked = await client.get(url, headers=right)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert locked.json()["error"]["code"] == "AUTH_RATE_LIMITED"
        other = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": bystander}
        assert (await client.get(url, headers=other)).status_code == 200
        # Hopping to another address of the same /64 gains nothing.
        neighbour = str(ipaddress.ip_address(attacker) + 1)
        hop = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": neighbour}
        assert (await client.get(url, headers=hop)).status_code == 429


async def test_handshake_brute_force_locked_out_and_bursts_do_not_bypass(
    stack, admin: Admin
) -> None:
    attacker = unique_ip()
    guesses = [
        admin.verify(verify_request(ip=attacker, token=secrets.token_urlsafe())) for _ in range(25)
    ]
    outcomes = await asyncio.gather(*guesses, return_exceptions=True)
    names = [getattr(o, "name", "OK") for o in outcomes]
    assert names.count("UNAUTHENTICATED") == 10
    assert names.count("RATE_LIMITED") == 15
    locked = await admin.verify_error(verify_request(ip=attacker, token=stack.admin_token))
    assert isinstance(locked, RateLimited) and locked.retry_after_ms > 0
    assert locked.detail_code == "AUTH_RATE_LIMITED"
    ok = await admin.verify(verify_request(ip=unique_ip(), token=stack.admin_token))
    assert ok["principal"]["id"] == "admin"
