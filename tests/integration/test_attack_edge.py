"""The attacks of "zero trust inside the stack", run against the real stack.

The attacker is a process on the same host: it reaches every internal port (services
listen on loopback) from a loopback address of its own (127.0.0.2 and up, which Traefik
does not trust to set X-Forwarded-For: the stack trusts 127.0.0.1 only). Each test fails
if an attack works:

- forged identity headers (and even a valid token) sent straight to http-api, ws-gateway,
  auth or ratelimit are not believed: refused without the edge proof, or nothing there;
- X-Forwarded-For sent straight to each service skips no lockout and locks out no victim:
  the victim's valid token through Traefik still works;
- the per-IP connection limit of `/ws` cannot be skipped by connecting directly.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.auth_support import unique_ip
from tests.integration.test_ratelimit_http import live_rules

pytestmark = pytest.mark.integration

FORGED = {
    "X-Aisopod-Principal": "admin",
    "X-Aisopod-Role": "operator",
    "X-Aisopod-Scopes": "operator.admin",
    "X-Aisopod-Auth-Method": "token",
    "X-Aisopod-Client-Ip": "127.0.0.1",
    "Aisopod-Principal": "admin",
    "Aisopod-Scopes": "operator.admin",
}
# Attacker sources, one per test: a lockout of one does not spill into another.
FORGER, GUESSER, DIALLER = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def service_urls(stack: Any) -> dict[str, list[str]]:
    record = json.loads((stack.state_dir / "stack.json").read_text())
    return {name: list(urls) for name, urls in record["service_urls"].items()}


@pytest.fixture
async def forger() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=FORGER)
    async with httpx.AsyncClient(transport=transport, timeout=10, trust_env=False) as client:
        yield client


def assert_edge_refusal(body: dict[str, Any], path: str) -> None:
    """The proof refusal in the surface's shape (OpenAI's under /v1)."""
    error = body["error"]
    assert "edge proof" in error["message"]
    if path.startswith("/v1"):
        assert (error["type"], error["code"]) == ("permission_error", "edge_proof_missing")
    else:
        assert body["ok"] is False and error["type"] == "edge_proof_missing"


async def _upgrade(url: str, source: str, headers: dict[str, str]) -> int:
    """101 when the WebSocket upgrade went through, else the refusal's status."""
    try:
        async with websockets.connect(
            url, additional_headers=headers, open_timeout=5, local_addr=(source, 0)
        ):
            return 101
    except websockets.exceptions.InvalidStatus as exc:
        return exc.response.status_code


async def test_forged_identity_straight_to_every_port_is_not_believed(
    stack, forger: httpx.AsyncClient
) -> None:
    urls = service_urls(stack)
    with_token = {**FORGED, "Authorization": f"Bearer {stack.admin_token}"}
    for api in urls["http-api"]:
        for headers in (FORGED, with_token):
            for method, path in (
                ("GET", "/status"),
                ("GET", "/v1/models"),
                ("POST", "/tools/invoke"),
            ):
                response = await forger.request(method, f"{api}{path}", headers=headers, json={})
                assert response.status_code == 403, (api, path, response.text)
                assert_edge_refusal(response.json(), path)
    for gateway in urls["ws-gateway"]:
        ws_url = gateway.replace("http://", "ws://") + "/ws"
        assert await _upgrade(ws_url, FORGER, with_token) == 403, gateway
    # auth and ratelimit answer nobody over HTTP but their probes: no /verify, no /check.
    for name, path in (("auth", "/verify"), ("ratelimit", "/check")):
        for base in urls[name]:
            response = await forger.get(f"{base}{path}", headers=with_token)
            assert response.status_code == 404, (name, response.status_code)
    # Through Traefik the forged headers count for nothing either.
    edge = await forger.get(f"{stack.http_url}/status", headers=FORGED)
    assert edge.status_code == 401


async def test_forwarded_for_straight_to_services_skips_no_lockout_and_locks_no_victim(
    stack,
) -> None:
    urls = service_urls(stack)
    victim = unique_ip()
    transport = httpx.AsyncHTTPTransport(local_address=GUESSER)
    async with httpx.AsyncClient(transport=transport, timeout=10, trust_env=False) as guesser:
        # Far more wrong guesses than the lockout allows (10), each claiming the victim's
        # address, straight to every service that could count it.
        for _ in range(15):
            guess = {
                "Authorization": f"Bearer {secrets.token_urlsafe()}",
                "X-Forwarded-For": victim,
            }
            for api in urls["http-api"]:
                assert (await guesser.get(f"{api}/status", headers=guess)).status_code == 403
            for gateway in urls["ws-gateway"]:
                ws_url = gateway.replace("http://", "ws://") + "/ws"
                assert await _upgrade(ws_url, GUESSER, guess) == 403
            for name, path in (("auth", "/verify"), ("ratelimit", "/check")):
                for base in urls[name]:
                    assert (await guesser.get(f"{base}{path}", headers=guess)).status_code == 404
        # The victim, through Traefik (a proxy we trust reports its address), is not locked.
        async with httpx.AsyncClient(timeout=10, trust_env=False) as victim_client:
            mine = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": victim}
            assert (await victim_client.get(f"{stack.http_url}/status", headers=mine)).is_success

        # Guessing through Traefik with a rotating X-Forwarded-For: Traefik does not trust
        # this peer, so every guess counts against the guesser's own address.
        for _ in range(10):
            guess = {
                "Authorization": f"Bearer {secrets.token_urlsafe()}",
                "X-Forwarded-For": unique_ip(),
            }
            response = await guesser.get(f"{stack.http_url}/status", headers=guess)
            assert response.status_code == 401
        right = {"Authorization": f"Bearer {stack.admin_token}", "X-Forwarded-For": unique_ip()}
        locked = await guesser.get(f"{stack.http_url}/status", headers=right)
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["retry-after"]) > 0


async def test_the_connection_limit_cannot_be_skipped_by_direct_connections(stack) -> None:
    urls = service_urls(stack)
    async with live_rules(stack, {"name": "ws_connect", "limit": 3, "windowS": 60}):
        # Straight to the gateways, a fresh X-Forwarded-For each time: never upgraded.
        for gateway in urls["ws-gateway"]:
            ws_url = gateway.replace("http://", "ws://") + "/ws"
            for _ in range(5):
                headers = {"X-Forwarded-For": unique_ip()}
                assert await _upgrade(ws_url, DIALLER, headers) == 403
        # Through Traefik the same rotation gains nothing: the peer is the client.
        statuses = [
            await _upgrade(stack.ws_url, DIALLER, {"X-Forwarded-For": unique_ip()})
            for _ in range(5)
        ]
        assert statuses[:3] == [101, 101, 101], statuses
        assert statuses[3:] == [429, 429], statuses
