"""The local stack runs auth and ratelimit in one process (launcher `auth+ratelimit`,
combined.py) when each runs once, as in the default profile and the suites' stack: each
keeps its own port, instance, readiness and log name; a chat turn and an auth-failure
lockout (auth asks ratelimit over NATS) work through it. What a crash restarts is in
test_launcher.py (the child is killed there and comes back)."""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.auth_support import unique_ip
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


def _record(stack) -> dict:
    path = Path(stack.state_dir) / "stack.json"
    if not path.exists():
        pytest.skip("not a local stack")
    return dict(json.loads(path.read_text()))


def test_auth_and_ratelimit_share_one_process_each_with_its_own_port(stack) -> None:
    record = _record(stack)
    (pid,) = stack.pids["auth"]
    assert stack.pids["ratelimit"] == [pid]
    assert record["children"]["auth+ratelimit"] == pid
    assert "auth" not in record["children"] and "ratelimit" not in record["children"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"aisopod_ops.launcher.combined" in argv
    seen = {}
    for service in ("auth", "ratelimit"):
        (url,) = record["service_urls"][service]
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["service"] == service and health["instance"] == f"{service}-1"
        ready = httpx.get(f"{url}/ready", timeout=5)
        assert ready.status_code == 200 and ready.json() == {"ready": True, "reasons": []}
        seen[service] = url
    assert seen["auth"] != seen["ratelimit"]
    # Each service's records keep its own name in the shared log file.
    log = Path(stack.state_dir) / "logs" / "auth+ratelimit.log"
    started = {
        json.loads(line)["service"]
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"msg":"started"' in line
    }
    assert started >= {"auth", "ratelimit"}


async def test_chat_turn_through_the_cohosted_auth(stack) -> None:
    _record(stack)
    word = uuid.uuid4().hex
    key = f"cohosted-{word[:8]}"
    async with await WsClient.connect(stack.ws_url, token=stack.admin_token) as client:
        started = await client.call("chat.send", {"sessionKey": key, "message": f"hi {word}"})
        done = await client.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        assert done["status"] == "ok"
        history = await client.call("chat.history", {"sessionKey": key})
    assert history["messages"][0]["content"] == f"hi {word}"
    assert history["messages"][-1]["role"] == "assistant"


async def test_auth_failures_lock_out_through_the_cohosted_ratelimit(stack) -> None:
    _record(stack)
    url = f"{stack.http_url}/status"
    attacker = unique_ip()
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
    assert locked.json()["error"]["code"] == "AUTH_RATE_LIMITED"
