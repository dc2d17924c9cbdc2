"""The real OpenClaw CLI (npm `openclaw`, pinned in scripts/bootstrap.sh) against the real
stack through `/openclaw` (docs/openclaw.md): every command an OpenClaw user runs, asserted
on its `--json` output. Each run has its own HOME, so nothing outside the test is touched.
`scripts/bootstrap.sh --openclaw` (part of `make test`) installs Node 24 and the CLI.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.support.openclaw import installed, json_out, openclaw
from tests.support.ws_client import WsClient
from tests.support.ws_stack import require_ws_stack

pytestmark = pytest.mark.integration

if not installed():
    pytest.skip(
        "the OpenClaw CLI is not installed: scripts/bootstrap.sh --openclaw",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openclaw-home")


def test_gateway_call_health_is_a_health_summary(stack, home: Path) -> None:
    summary = json_out(openclaw(stack, home, "gateway", "call", "health", "--json"))
    assert summary["ok"] is True
    assert summary["defaultAgentId"] == "main"
    assert any(a["agentId"] == "main" and a["isDefault"] for a in summary["agents"])
    assert {"durationMs", "heartbeatSeconds", "sessions", "channels"} <= summary.keys()


async def edge_fallbacks(replicas: list[str]) -> float:
    """Edge-served reads sent to the owner, summed over the ws-gateway replicas."""
    total = 0.0
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        for replica in replicas:
            base = replica.replace("ws://", "http://").removesuffix("/ws")
            for line in (await http.get(f"{base}/metrics")).text.splitlines():
                if line.startswith("aisopod_ws_edge_fallbacks_total "):
                    total += float(line.split()[1])
    return total


async def test_gateway_call_agents_list_is_answered_at_the_edge(stack, home: Path) -> None:
    """OpenClaw's agents.list joins our agents.list and models.list (for the default
    model): both from ws-gateway's replicas, with the stack's `fake` provider discovering
    its upstream's models (KV `models`), so nothing goes to the runtime."""
    env = await require_ws_stack(stack)
    # The runtime stores the discovery at its start; wait until every replica has it.
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        before = await edge_fallbacks(env.replicas)
        for replica in env.replicas:
            async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
                await ws.call("models.list")
        if await edge_fallbacks(env.replicas) == before:
            break
        assert asyncio.get_running_loop().time() < deadline, "models.list not at the edge"
        await asyncio.sleep(0.2)
    before = await edge_fallbacks(env.replicas)
    listed = json_out(openclaw(stack, home, "gateway", "call", "agents.list", "--json"))
    assert any(a["id"] == "main" and a["model"]["primary"] for a in listed["agents"])
    assert await edge_fallbacks(env.replicas) == before


async def test_gateway_call_sessions_list_is_answered_at_the_edge(stack, home: Path) -> None:
    """OpenClaw's sessions.list joins our sessions.list (ws-gateway's sessions index) and
    models.list (its replicas): nothing goes to the runtime once both are warm."""
    env = await require_ws_stack(stack)
    deadline = asyncio.get_running_loop().time() + 15
    while True:  # the runtime stores the model discovery at its start
        before = await edge_fallbacks(env.replicas)
        for replica in env.replicas:
            async with await WsClient.connect(replica, token=env.token, headers=env.edge) as ws:
                await ws.call("models.list")
                await ws.call("sessions.list", {"limit": 1})
        if await edge_fallbacks(env.replicas) == before:
            break
        assert asyncio.get_running_loop().time() < deadline, "not answered at the edge"
        await asyncio.sleep(0.2)
    before = await edge_fallbacks(env.replicas)
    listed = json_out(openclaw(stack, home, "gateway", "call", "sessions.list", "--json"))
    assert listed["path"] == "nats-kv:sessions" and listed["count"] == len(listed["sessions"])
    assert await edge_fallbacks(env.replicas) == before


def test_gateway_call_status_and_system_presence(stack, home: Path) -> None:
    status = json_out(openclaw(stack, home, "gateway", "call", "status", "--json"))
    assert status["runtimeVersion"] and status["heartbeat"]["defaultAgentId"] == "main"
    assert isinstance(status["sessions"]["byAgent"], list)
    presence = json_out(openclaw(stack, home, "gateway", "call", "system-presence", "--json"))
    assert any(p["mode"] == "cli" and p["clientId"] == "cli" for p in presence)


def test_gateway_health_and_probe(stack, home: Path) -> None:
    health = json_out(openclaw(stack, home, "gateway", "health", "--json"))
    assert health["ok"] is True and isinstance(health["durationMs"], int)
    probe = json_out(openclaw(stack, home, "gateway", "probe", "--json"))
    assert probe["ok"] is True and probe["capability"] == "read_only"
    (target,) = [t for t in probe["targets"] if t["url"] == stack.openclaw_url]
    assert target["connect"]["ok"] is True and target["connect"]["rpcOk"] is True


def test_health_and_status_with_a_remote_config(stack, home: Path) -> None:
    health = json_out(openclaw(stack, home, "health", "--json", remote=False))
    assert health["ok"] is True and health["defaultAgentId"] == "main"
    config = home / ".openclaw" / "openclaw.json"
    config.parent.mkdir(exist_ok=True)
    remote = {"url": stack.openclaw_url, "token": stack.admin_token}
    config.write_text(json.dumps({"gateway": {"mode": "remote", "remote": remote}}))
    try:
        status = json_out(openclaw(stack, home, "status", "--json", remote=False))
    finally:
        config.unlink()
    assert status["gateway"]["reachable"] is True
    assert status["gateway"]["url"] == stack.openclaw_url


def test_cron_add_then_list(stack, home: Path) -> None:
    name = f"oc-{uuid.uuid4().hex[:8]}"
    args = ("cron", "add", "--name", name, "--every", "1h", "--agent", "main")
    added = json_out(openclaw(stack, home, *args, "--message", "ping", "--json"))
    assert added["name"] == name and added["agentId"] == "main"
    assert added["schedule"] == {"kind": "every", "everyMs": 3_600_000}
    assert added["payload"]["message"] == "ping"
    listed = json_out(openclaw(stack, home, "cron", "list", "--json"))
    assert added["id"] in [job["id"] for job in listed["jobs"]]
    assert listed["snapshotRevision"] and listed["total"] >= 1
    assert listed["offset"] == 0 and listed["hasMore"] is False


def test_logs_are_lines_the_cli_parses(stack, home: Path) -> None:
    done = openclaw(stack, home, "logs", "--limit", "3", "--json")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert records[0]["type"] == "meta"
    logs = [r for r in records if r["type"] == "log"]
    assert 1 <= len(logs) <= 3
    assert all(r["message"] and r["level"] and r["time"] for r in logs)


def test_agent_message_answers_with_the_run_text(stack, home: Path) -> None:
    args = ("agent", "--agent", "main", "--message", "hi from openclaw", "--json")
    final = json_out(openclaw(stack, home, *args, remote=False))
    assert final["status"] == "ok"
    assert [p["text"] for p in final["result"]["payloads"]] == ["echo: hi from openclaw"]


def test_gateway_call_agent_expect_final_runs_under_the_idempotency_key(stack, home: Path) -> None:
    key = f"oc-{uuid.uuid4().hex}"
    params = json.dumps({"message": "yo", "agentId": "main", "idempotencyKey": key})
    args = ("gateway", "call", "agent", "--params", params, "--json")
    accepted = json_out(openclaw(stack, home, *args))
    assert accepted == accepted | {"runId": key, "status": "accepted"}
    key2 = f"oc-{uuid.uuid4().hex}"
    params = json.dumps({"message": "yo", "agentId": "main", "idempotencyKey": key2})
    args = ("gateway", "call", "agent", "--params", params, "--expect-final", "--json")
    final = json_out(openclaw(stack, home, *args))
    assert final["runId"] == key2 and final["status"] == "ok"
    assert final["result"]["payloads"][0]["text"] == "echo: yo"


def test_gateway_call_heartbeat_methods(stack, home: Path) -> None:
    session = f"oc-hb-{uuid.uuid4().hex[:10]}"

    def call(method: str, params: dict[str, Any]) -> Any:
        args = ("gateway", "call", method, "--params", json.dumps(params), "--json")
        return json_out(openclaw(stack, home, *args))

    # OpenClaw's presence fields ride along and are dropped; the text is queued.
    event = {"text": "Node: mac (10.0.0.2)", "sessionKey": session, "host": "mac"}
    queued = call("system-event", event)
    assert queued["ok"] is True and queued["queued"] == 1
    assert queued["sessionKey"] == f"agent:main:{session}"
    woke = call("wake", {"mode": "next-heartbeat", "text": "later", "sessionKey": session})
    assert woke["ok"] is True and woke["queued"] == 2 and woke["runId"] is None
    assert call("set-heartbeats", {"enabled": True}) == {"ok": True, "enabled": True}
    # The newest heartbeat event itself, or null before the first (as OpenClaw answers).
    done = openclaw(stack, home, "gateway", "call", "last-heartbeat", "--json")
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    assert text.endswith("null") or {"ts", "status", "agentId"} <= json_out(done).keys()


async def test_agent_files_and_identity_through_openclaw(stack, home: Path) -> None:
    from tests.integration.runtime_support import RuntimeClient

    agent_id = f"oc-files-{uuid.uuid4().hex[:6]}"
    rt = await RuntimeClient.connect(stack.nats_url, stack.nats_password("admin"))
    try:
        await rt.call("agents.create", {"id": agent_id, "name": "Claw"})
    finally:
        await rt.close()

    async def call(method: str, params: dict[str, Any]) -> Any:
        args = ("gateway", "call", method, "--params", json.dumps(params), "--json")
        return await asyncio.to_thread(lambda: openclaw(stack, home, *args))

    content = "- Name: Molty\n- Emoji: 🦞\n"
    put = json_out(
        await call(
            "agents.files.set", {"agentId": agent_id, "name": "IDENTITY.md", "content": content}
        )
    )
    digest = hashlib.sha256(content.encode()).hexdigest()
    assert put["ok"] is True and put["workspace"] == f"agentfiles/{agent_id}"
    assert put["file"]["hash"] == digest and put["file"]["path"].endswith("/IDENTITY.md")
    listed = json_out(await call("agents.files.list", {"agentId": agent_id}))
    assert any(f["name"] == "IDENTITY.md" and not f["missing"] for f in listed["files"])
    identity = json_out(await call("agent.identity.get", {"agentId": agent_id}))
    assert identity == {
        "agentId": agent_id,
        "name": "Molty",
        "nameSource": "workspace",
        "emoji": "🦞",
        "avatar": "🦞",
    }
    stale = {"agentId": agent_id, "name": "IDENTITY.md", "content": "x", "expectedHash": "0" * 64}
    done = await call("agents.files.set", stale)
    assert done.returncode != 0
    error = json_out(done)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"] == {
        "type": "agent_file_conflict",
        "name": "IDENTITY.md",
        "currentHash": digest,
    }


def test_a_bad_token_is_refused(stack, home: Path) -> None:
    done = openclaw(stack, home, "gateway", "call", "health", "--json", token="not-the-token")
    assert done.returncode != 0
    error = json_out(done)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"]["code"] == "AUTH_TOKEN_MISMATCH"


def test_an_unknown_method_is_named(stack, home: Path) -> None:
    done = openclaw(stack, home, "gateway", "call", "no.such.method", "--json")
    assert done.returncode != 0
    error = json_out(done)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["message"] == "unknown method: no.such.method"


# -- a browser's device, approved with the CLI ---------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def control_ui_connect(stack: Any, key: Ed25519PrivateKey) -> tuple[dict[str, Any], Any]:
    """Connect as the OpenClaw Control UI does: an Origin, `token` and `password` with the
    same value, and a device signed with the v2 string. The connect reply, and the close."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device_id = hashlib.sha256(raw).hexdigest()
    scopes = ["operator.admin", "operator.read", "operator.write", "operator.questions"]
    token = stack.admin_token
    async with websockets.connect(stack.openclaw_url, origin=stack.http_url) as ws:
        challenge = json.loads(await asyncio.wait_for(ws.recv(), 10))
        nonce, ts = challenge["payload"]["nonce"], challenge["payload"]["ts"]
        signed = f"v2|{device_id}|openclaw-control-ui|webchat|operator|{','.join(scopes)}"
        signed += f"|{ts}|{token}|{nonce}"
        connect = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {
                "id": "openclaw-control-ui",
                "version": "2026.9.6",
                "platform": "Linux x86_64",
                "mode": "webchat",
            },
            "role": "operator",
            "scopes": scopes,
            "auth": {"token": token, "password": token},
            "device": {
                "id": device_id,
                "publicKey": b64url(raw),
                "signature": b64url(key.sign(signed.encode())),
                "signedAt": ts,
                "nonce": nonce,
            },
        }
        await ws.send(
            json.dumps({"type": "req", "id": "1", "method": "connect", "params": connect})
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if not reply["ok"]:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            return reply, closed.value.rcvd
        return reply, None


async def test_a_control_ui_device_is_approved_with_devices_approve(stack, home: Path) -> None:
    key = Ed25519PrivateKey.generate()
    refused, close = await control_ui_connect(stack, key)
    assert refused["error"]["code"] == "NOT_PAIRED"
    assert refused["error"]["details"]["code"] == "PAIRING_REQUIRED"
    assert close is not None and close.code == 1008
    request_id = refused["error"]["details"]["requestId"]
    listed = json_out(await asyncio.to_thread(openclaw, stack, home, "devices", "list", "--json"))
    assert request_id in [p["requestId"] for p in listed["pending"]]
    approve = ("devices", "approve", request_id, "--json")
    done = await asyncio.to_thread(openclaw, stack, home, *approve)
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 10
    while True:  # the approval reaches the auth service's view through NATS KV
        hello, close = await control_ui_connect(stack, key)
        if hello["ok"] or time.monotonic() > deadline:
            break
    assert hello["ok"] is True, hello
    assert hello["payload"]["type"] == "hello-ok" and hello["payload"]["protocol"] == 4
    assert "buildId" not in hello["payload"]["server"]
    assert "chat.send" in hello["payload"]["features"]["methods"]
