"""/hooks through Traefik with the real ratelimit and runtime: token rules, lockout,
redelivery. Each test speaks from its own client address (X-Forwarded-For from loopback,
which Traefik and http-api trust), since lockouts are per IP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import nats
import pytest

from aisopod.compat.natspy import flush_in_order
from tests.conftest import HOOK_TOKEN

pytestmark = pytest.mark.integration


def _ip() -> str:
    n = uuid.uuid4().int
    return f"203.0.{n % 250}.{(n >> 8) % 250 + 1}"


def _headers(token: str, ip: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-forwarded-for": ip, **extra}


def test_token_in_header_starts_an_agent_turn(stack) -> None:
    response = httpx.post(
        f"{stack.http_url}/hooks/agent",
        json={"message": f"hook {uuid.uuid4().hex}", "name": "itest"},
        headers=_headers(HOOK_TOKEN, _ip()),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True and response.json()["runId"]
    wake = httpx.post(
        f"{stack.http_url}/hooks/wake",
        json={"text": "nightly backup finished"},
        headers={"x-aisopod-token": HOOK_TOKEN, "x-forwarded-for": _ip()},
        timeout=15,
    )
    assert wake.status_code == 200 and wake.json()["mode"] == "now"


def test_token_in_query_is_400(stack) -> None:
    response = httpx.post(
        f"{stack.http_url}/hooks/wake?token={HOOK_TOKEN}",
        json={"text": "x"},
        headers={"x-forwarded-for": _ip()},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["ok"] is False


def test_bad_token_401_then_429(stack) -> None:
    ip = _ip()
    statuses = []
    with httpx.Client(timeout=10) as client:
        for _ in range(20):  # hook_failures: 20 per 60 s per IP
            bad = client.post(
                f"{stack.http_url}/hooks/wake", json={"text": "x"}, headers=_headers("nope", ip)
            )
            statuses.append(bad.status_code)
        locked = client.post(
            f"{stack.http_url}/hooks/wake", json={"text": "x"}, headers=_headers(HOOK_TOKEN, ip)
        )
    assert set(statuses) == {401}
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1


def test_non_post_is_405(stack) -> None:
    response = httpx.get(f"{stack.http_url}/hooks/wake", timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["allow"]


async def test_redelivery_runs_once(stack) -> None:
    name = f"redeliver-{uuid.uuid4().hex[:8]}"
    delivery = str(uuid.uuid4())
    nc = await nats.connect(stack.nats_url, user="admin", password=stack.nats_password("admin"))
    runs: set[str] = set()

    async def seen(msg) -> None:  # type: ignore[no-untyped-def]
        event = json.loads(msg.data)
        if f":hook:{name}:" in event.get("sessionKey", ""):
            runs.add(event["runId"])

    sub = await nc.subscribe("aisopod.evt.chat.event", cb=seen)
    await flush_in_order(nc, 5)  # the subscription is live before the hook can start a run
    try:
        headers = _headers(HOOK_TOKEN, _ip(), **{"X-GitHub-Delivery": delivery})
        body = {"message": f"deploy {delivery}", "name": name}
        async with httpx.AsyncClient(timeout=15) as client:
            first = await client.post(f"{stack.http_url}/hooks/agent", json=body, headers=headers)
            again = await client.post(f"{stack.http_url}/hooks/agent", json=body, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.json()["runId"] == first.json()["runId"]
        assert again.json()["duplicate"] is True
        deadline = time.monotonic() + 10
        while not runs and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # The run's events arrive; a second run would have its own session and runId.
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle and len(runs) < 2:
            await asyncio.sleep(0.05)
        assert runs == {first.json()["runId"]}
    finally:
        await sub.unsubscribe()
        await nc.close()


def test_post_to_hooks_itself_runs_the_action_its_body_names(stack) -> None:
    for path in ("/hooks", "/hooks/"):
        agent = httpx.post(
            f"{stack.http_url}{path}",
            json={"action": "agent", "message": f"hook {uuid.uuid4().hex}", "name": "itest"},
            headers=_headers(HOOK_TOKEN, _ip()),
            timeout=15,
            follow_redirects=False,
        )
        assert agent.status_code == 200, (path, agent.status_code, agent.text)
        assert agent.json()["ok"] is True and agent.json()["runId"]
    wake = httpx.post(
        f"{stack.http_url}/hooks",
        json={"action": "wake", "text": f"ping {uuid.uuid4().hex}"},
        headers=_headers(HOOK_TOKEN, _ip()),
        timeout=15,
        follow_redirects=False,
    )
    assert wake.status_code == 200 and wake.json()["mode"] == "now", wake.text
    unnamed = httpx.post(
        f"{stack.http_url}/hooks",
        json={"text": "which action?"},
        headers=_headers(HOOK_TOKEN, _ip()),
        timeout=15,
        follow_redirects=False,
    )
    assert unnamed.status_code == 400, unnamed.text  # never a redirect of a POST
    assert "/hooks/wake" in unnamed.text and "/hooks/agent" in unnamed.text
    assert unnamed.headers["x-request-id"]
