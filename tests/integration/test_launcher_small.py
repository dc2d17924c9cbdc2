"""`aisopod stack up --small`: the five Python services in one process, each on its own
port with its own NATS user, behind the same Traefik; a chat turn over the WebSocket and a
`/v1/chat/completions` call go through it, each service's log records keep its name, and
the same process serves the Control UI in Caddy's place."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import nats
import openai
import pytest

from aisopod.services import PYTHON_SERVICES
from aisopod.subjects import Subjects
from tests.conftest import start_local_stack, stop_local_stack
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


async def _chat_turn(ws_url: str, token: str, word: str) -> tuple[dict, dict]:
    async with await WsClient.connect(ws_url, token=token) as client:
        key = f"small-{word[:8]}"
        started = await client.call("chat.send", {"sessionKey": key, "message": f"hi {word}"})
        done = await client.call("agent.wait", {"runId": started["runId"], "timeoutMs": 10_000})
        history = await client.call("chat.history", {"sessionKey": key})
        return done, history


def test_small_profile_serves_a_chat_turn_and_v1(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    proc, info = start_local_stack(state, "--small")
    try:
        # nats, the one services process (which serves the UI too: no Caddy), traefik.
        assert sorted(info["pids"]) == ["nats", "services", "traefik"]
        assert all(len(group) == 1 for group in info["pids"].values())
        word = uuid.uuid4().hex
        done, history = asyncio.run(_chat_turn(info["ws_url"], info["admin_token"], word))
        assert done["status"] == "ok"
        assert [(m["role"], m["content"]) for m in history["messages"]] == [
            ("user", f"hi {word}"),
            ("assistant", f"echo: hi {word}"),
        ]
        sdk = openai.OpenAI(
            base_url=info["http_url"] + "/v1", api_key=info["admin_token"], max_retries=0
        )
        completion = sdk.chat.completions.create(
            model="aisopod/main", messages=[{"role": "user", "content": f"v1 {word}"}]
        )
        assert completion.choices[0].message.content == f"echo: v1 {word}"
        shell = httpx.get(info["http_url"] + "/sessions/main")
        assert shell.status_code == 200
        assert shell.headers["content-type"] == "text/html; charset=utf-8"
        assert "frame-ancestors 'none'" in shell.headers["content-security-policy"]
        assert httpx.get(info["http_url"] + "/assets/missing.js").status_code == 404
    finally:
        code = stop_local_stack(proc)
    assert code == 0
    # Co-hosted services log under their own names (one stderr, five services).
    records = []
    for line in (state / "logs" / "services.log").read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    started = {r["service"] for r in records if r.get("msg") == "started"}
    assert started == {s.value for s in PYTHON_SERVICES}


async def _order_restart(nats_url: str, password: str, instance: str) -> dict:
    nc = await nats.connect(nats_url, user="admin", password=password)
    try:
        subject = Subjects().instance_control(instance, "restart")
        reply = await nc.request(subject, json.dumps({"graceMs": 0}).encode(), timeout=10)
        return json.loads(reply.data)
    finally:
        await nc.close()


def test_small_profile_restarts_the_whole_stack_on_a_restart_order(tmp_path: Path) -> None:
    """The services live in the launcher's process: a restart order (what `update.run`
    sends each instance) stops the stack in order and starts it again in the same process
    (same pid), with the same state."""
    state = tmp_path / "state"
    state.mkdir()
    proc, info = start_local_stack(state, "--small")
    try:
        ready = state / "ready.json"
        ready.unlink()
        password = (state / "secrets" / "nats-admin.password").read_text().strip()
        answer = asyncio.run(_order_restart(info["nats_url"], password, "ratelimit-1"))
        assert answer["result"]["accepted"] is True
        deadline = time.monotonic() + 90
        while not ready.exists():
            assert proc.poll() is None, "the launcher exited instead of restarting"
            assert time.monotonic() < deadline, "the stack did not come back"
            time.sleep(0.2)
        again = json.loads(ready.read_text())
        assert again["pids"]["services"] == [proc.pid]
        assert again["pids"]["nats"] != info["pids"]["nats"]  # really started anew
        word = uuid.uuid4().hex
        done, _ = asyncio.run(_chat_turn(again["ws_url"], again["admin_token"], word))
        assert done["status"] == "ok"
    finally:
        code = stop_local_stack(proc)
    assert code == 0
