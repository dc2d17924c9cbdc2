"""The HTTP edge: identity headers a client sends are never believed, and brute force is
locked out per client IP (X-Forwarded-For through Traefik, which trusts loopback here).

No service reads identity from HTTP any more: http-api asks auth over NATS for the bearer
of each request (services/http-api/src/aisopod_http_api/gate.py). Forged identity
headers through Traefik count for nothing; sent straight to http-api they are refused
before anything is read (no edge proof). The attack suite (test_attack_edge.py) covers
every port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets

import httpx
import pytest

from aisopod.errors import RateLimited
from tests.integration.auth_support import (
    Admin,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration


def http_api_url(stack) -> str:
    record = json.loads((stack.state_dir / "stack.json").read_text())
    return str(record["service_urls"]["http-api"][0])


SPOOFED = {
    "X-Aisopod-Principal": "mallory",
    "X-Aisopod-Role": "operator",
    "X-Aisopod-Scopes": "operator.admin",
    "X-Aisopod-Auth-Method": "token",
    "X-Aisopod-Device-Id": "f" * 64,
    "X-Aisopod-Client-Ip": "10.0.0.1",
}


async def test_spoofed_identity_headers_are_never_believed(stack, admin: Admin) -> None:
    created = await admin.request("token.create", {"scopes": ["operator.read"], "name": "edge"})
    reader = remember(created["token"])
    edge = stack.http_url
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        spoof_only = await client.get(f"{edge}/status", headers=SPOOFED)
        assert spoof_only.status_code == 401
        assert len(spoof_only.headers["x-request-id"]) == 32
        assert spoof_only.headers["x-content-type-options"] == "nosniff"
        assert spoof_only.headers["referrer-policy"] == "no-referrer"
        quoted = await client.get(f"{edge}/status", headers={"X-Request-Id": "case-7"})
        assert quoted.status_code == 401 and quoted.headers["x-request-id"] == "case-7"

        as_reader = {**SPOOFED, "Authorization": f"Bearer {reader}"}
        assert (await client.get(f"{edge}/status", headers=as_reader)).status_code == 200
        # The forged operator.admin scope is not the reader's: a write is still refused.
        write = await client.post(f"{edge}/tools/invoke", headers=as_reader, json={})
        assert write.status_code == 403

        # Straight to http-api, even a valid token is refused without the edge proof.
        direct = await client.get(
            f"{http_api_url(stack)}/status",
            headers={**SPOOFED, "Authorization": f"Bearer {stack.admin_token}"},
        )
        assert direct.status_code == 403
        assert direct.json()["error"]["type"] == "edge_proof_missing"
    await admin.request("token.revoke", {"tokenId": created["tokenId"]})


# -- lockout ---------------------------------------------------------------------------
async def test_http_brute_force_locked_out_after_ten_failures(stack, admin: Admin) -> None:
    url = f"{stack.http_url}/status"
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
