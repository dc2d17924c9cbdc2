"""Traefik's access log is JSON and never holds a credential."""

from __future__ import annotations

import base64
import json
import secrets
import time

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_access_log_has_the_requests_but_no_secret(stack) -> None:
    marker = secrets.token_hex(6)
    query_token = f"qtok-{secrets.token_hex(16)}"
    bearer = f"btok-{secrets.token_hex(16)}"
    hook_token = f"htok-{secrets.token_hex(16)}"
    password = f"pw-{secrets.token_hex(16)}"
    basic = base64.b64encode(f"user-{marker}:{password}".encode()).decode()
    with httpx.Client(base_url=stack.http_url, timeout=5) as client:
        client.get(f"/v1/models?token={query_token}&m={marker}")
        client.get(f"/hooks/{marker}?token={query_token}", headers={"Authorization": basic})
        client.post(f"/hooks/{marker}", headers={"x-aisopod-token": hook_token}, json={})
        client.get(f"/health?m={marker}", headers={"Authorization": f"Bearer {bearer}"})
        client.get(f"/ws?token={query_token}&m={marker}", headers={"Cookie": f"s={bearer}"})
        client.get(f"/v1/models?m={marker}", headers={"Authorization": f"Basic {basic}"})
        client.get(f"/hooks/{marker}/last")  # sequential: once logged, all the others are
    log = stack.state_dir / "logs" / "traefik-access.log"
    deadline = time.monotonic() + 30
    entries: list[dict] = []
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        if any(e.get("RequestPath") == f"/hooks/{marker}/last" for e in entries):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the requests never showed up in the access log")
    # Paths are logged (without their query strings), status and router too.
    hooks = [e for e in entries if e.get("RequestPath") == f"/hooks/{marker}"]
    assert {e["RequestMethod"] for e in hooks} == {"GET", "POST"}
    assert all("DownstreamStatus" in e and "RouterName" in e for e in hooks)
    text = log.read_text()
    for secret in (query_token, bearer, hook_token, password, basic, f"user-{marker}"):
        assert secret not in text
    assert "?token=" not in text
