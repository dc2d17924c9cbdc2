"""/hooks: token rules, lockout (the ratelimit double), actions, mappings, redelivery."""

from __future__ import annotations

import uuid

import httpx


def _ip() -> str:
    """A client address of its own per test (the lockout is per IP)."""
    n = uuid.uuid4().int
    return f"198.51.{n % 250}.{(n >> 8) % 250 + 1}"


def _h(token: str, ip: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", "x-forwarded-for": ip, **extra}


async def test_token_in_header_runs_agent_turn(
    client: httpx.AsyncClient, served, hook_token
) -> None:
    word = uuid.uuid4().hex
    response = await client.post(
        "/hooks/agent",
        json={"message": f"build {word}", "name": "ci"},
        headers=_h(hook_token, _ip()),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["runId"].startswith("run-")
    call = served.runtime.calls[-1]
    assert call[0] == "agent" and call[1]["message"] == f"build {word}"
    assert call[1]["sessionKey"].startswith("agent:main:hook:ci:")
    assert call[2]["Aisopod-Principal"] == "hook:agent:ci"
    other = await client.post(
        "/hooks/agent", json={"message": "x"}, headers={"x-aisopod-token": hook_token}
    )
    assert other.status_code == 200


async def test_wake(client: httpx.AsyncClient, served, hook_token) -> None:
    response = await client.post(
        "/hooks/wake",
        json={"text": "disk full", "mode": "next-heartbeat"},
        headers=_h(hook_token, _ip()),
    )
    assert response.json() == {
        "ok": True,
        "mode": "next-heartbeat",
        "runId": None,
        "duplicate": False,
    }
    woke = served.runtime.params("wake")[-1]
    assert woke["text"] == "disk full" and woke["mode"] == "next-heartbeat"
    assert woke["idempotencyKey"].startswith("hook-wake:")


async def test_query_token_is_refused(client: httpx.AsyncClient, hook_token) -> None:
    response = await client.post(f"/hooks/wake?token={hook_token}", json={"text": "x"})
    assert response.status_code == 400
    assert response.json()["ok"] is False and "header" in response.json()["error"]["message"]


async def test_bad_token_401_then_429(client: httpx.AsyncClient, served, hook_token) -> None:
    ip = _ip()
    for _ in range(served.runtime.lockout_after):
        bad = await client.post("/hooks/wake", json={"text": "x"}, headers=_h("wrong", ip))
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"] == "Bearer"
    locked = await client.post("/hooks/wake", json={"text": "x"}, headers=_h(hook_token, ip))
    assert locked.status_code == 429 and locked.headers["retry-after"] == "5"
    elsewhere = await client.post("/hooks/wake", json={"text": "x"}, headers=_h(hook_token, _ip()))
    assert elsewhere.status_code == 200


async def test_redelivery_runs_once(client: httpx.AsyncClient, served, hook_token) -> None:
    delivery = str(uuid.uuid4())
    headers = _h(hook_token, _ip(), **{"X-GitHub-Delivery": delivery})
    message = f"deploy {uuid.uuid4().hex}"
    first = await client.post("/hooks/agent", json={"message": message}, headers=headers)
    again = await client.post("/hooks/agent", json={"message": message}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["runId"] == first.json()["runId"] and again.json()["duplicate"] is True
    runs = [p for p in served.runtime.params("agent") if p["message"] == message]
    assert len(runs) == 1


async def test_mappings(client: httpx.AsyncClient, served, hook_token) -> None:
    repo = f"acme/{uuid.uuid4().hex[:8]}"
    push = await client.post(
        "/hooks/github",
        json={"repository": {"full_name": repo}},
        headers=_h(hook_token, _ip(), **{"x-github-event": "push"}),
    )
    assert push.status_code == 200, push.text
    assert served.runtime.params("agent")[-1]["message"] == f"push to {repo}"
    other_event = await client.post(
        "/hooks/github",
        json={"repository": {"full_name": repo}},
        headers=_h(hook_token, _ip(), **{"x-github-event": "star"}),
    )
    assert other_event.status_code == 404
    alert = await client.post(
        "/hooks/alerts",
        json={"severity": "critical", "title": "db down"},
        headers=_h(hook_token, _ip()),
    )
    assert alert.json()["mode"] == "now"
    assert "alert: db down" in served.runtime.params("wake")[-1]["text"]
    unknown = await client.post("/hooks/nothing", json={}, headers=_h(hook_token, _ip()))
    assert unknown.status_code == 404


async def test_limits_and_methods(client: httpx.AsyncClient, hook_token) -> None:
    big = await client.post(
        "/hooks/agent", json={"message": "x" * 5000}, headers=_h(hook_token, _ip())
    )
    assert big.status_code == 413
    get = await client.get("/hooks/wake")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    invalid = await client.post("/hooks/agent", json={"nope": 1}, headers=_h(hook_token, _ip()))
    assert invalid.status_code == 400
    session = await client.post(
        "/hooks/agent",
        json={"message": "x", "sessionKey": "agent:main:main"},
        headers=_h(hook_token, _ip()),
    )
    assert session.status_code == 400  # hooks.allowRequestSessionKey is off
