"""The http-api in process, served by uvicorn on a free port, against real NATS and the fake
upstream. Traefik's part (the edge proof) is played by the tests' headers; the runtime,
auth and ratelimit are played by `RuntimeDouble` (the real ones are exercised by
tests/integration/test_http_*.py against the whole stack).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import uvicorn
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from aisopod.compat.natspy import flush_in_order
from aisopod.errors import AisopodError, InvalidParams, NotFound, Unauthenticated
from aisopod.settings import ServiceSettings
from aisopod_fake_upstream.harness import FakeUpstream
from aisopod_http_api.main import build
from tests.support.seeding import seed_deployment

# Helper modules beside the tests (openresponses_schema) are imported by name.
sys.path.insert(0, str(Path(__file__).parent))

FAKE_KEY = "sk-unit-fake"
HOOK_TOKEN = "unit-hook-token-0123456789"
EDGE_SECRET = "unit-edge-secret-0123456789"
EDGE = {"x-aisopod-edge": EDGE_SECRET}
# Bearer credentials the auth double knows: credential → (principal, scopes).
PRINCIPALS = {
    "unit-admin-token": ("operator:test", ["operator.admin"]),
    "unit-reader-token": ("operator:reader", ["operator.read"]),
}
ADMIN = {"authorization": "Bearer unit-admin-token", **EDGE}
READER = {"authorization": "Bearer unit-reader-token", **EDGE}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=FAKE_KEY) as upstream:
        yield upstream


class RuntimeDouble:
    """Answers the runtime's, auth's and ratelimit's NATS subjects the way their contracts
    say, so the routes' own logic can be tested in process. Records every call."""

    def __init__(self, nc: NATS, prefix: str) -> None:
        self.nc = nc
        self.prefix = prefix
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.failures: dict[str, int] = {}
        self.lockout_after = 3
        self._subs: list[Any] = []

    def params(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params, _ in self.calls if name == method]

    async def start(self) -> None:
        for method in (
            "agent",
            "wake",
            "chat.send",
            "chat.abort",
            "agent.wait",
            "chat.history",
            "agents.list",
            "tools.catalog",
            "tools.invoke",
            "status",
            "usage.status",
        ):
            sub = await self.nc.subscribe(f"{self.prefix}.rpc.{method}", cb=self._rpc(method))
            self._subs.append(sub)
        for verb in ("status", "fail"):
            sub = await self.nc.subscribe(f"{self.prefix}.ratelimit.{verb}", cb=self._limit(verb))
            self._subs.append(sub)
        self._subs.append(
            await self.nc.subscribe(f"{self.prefix}.ratelimit.edge", cb=self._edge_limit)
        )
        self._subs.append(await self.nc.subscribe(f"{self.prefix}.auth.verify", cb=self._verify))
        await flush_in_order(self.nc, 5)

    async def _edge_limit(self, msg: Msg) -> None:
        self.calls.append(("ratelimit.edge", json.loads(msg.data), {}))
        result = {"allowed": True, "limit": 100, "remaining": 99, "resetMs": 1000}
        await msg.respond(json.dumps({"result": result}).encode())

    async def _verify(self, msg: Msg) -> None:
        params = json.loads(msg.data)
        self.calls.append(("auth.verify", params, {}))
        known = PRINCIPALS.get(params.get("bearer") or "")
        if known is None:
            error = Unauthenticated("invalid token", code="AUTH_TOKEN_MISMATCH")
            await msg.respond(json.dumps({"error": error.to_wire()}).encode())
            return
        principal_id, scopes = known
        principal = {
            "id": principal_id,
            "role": "operator",
            "scopes": scopes,
            "authMethod": "token",
        }
        await msg.respond(json.dumps({"result": {"principal": principal}}).encode())

    def _rpc(self, method: str):  # type: ignore[no-untyped-def]
        async def handle(msg: Msg) -> None:
            params = json.loads(msg.data or b"{}")
            self.calls.append((method, params, dict(msg.headers or {})))
            try:
                result = await getattr(self, "do_" + method.replace(".", "_"))(params)
                reply = {"result": result}
            except AisopodError as exc:
                reply = {"error": exc.to_wire()}
            await msg.respond(json.dumps(reply).encode())

        return handle

    def _limit(self, verb: str):  # type: ignore[no-untyped-def]
        async def handle(msg: Msg) -> None:
            params = json.loads(msg.data)
            key = params["key"]
            if verb == "fail":
                self.failures[key] = self.failures.get(key, 0) + 1
            locked = self.failures.get(key, 0) >= self.lockout_after
            result = {
                "allowed": not locked,
                "limit": self.lockout_after,
                "remaining": max(0, self.lockout_after - self.failures.get(key, 0)),
                "resetMs": 5000,
                "retryAfterMs": 5000 if locked else 0,
                "locked": locked,
            }
            await msg.respond(json.dumps({"result": result}).encode())

        return handle

    async def _emit(self, session_key: str, run_id: str, message: str) -> None:
        subject = f"{self.prefix}.evt.chat.event"
        await asyncio.sleep(0.01)
        if "[[fail]]" in message:
            event = {
                "runId": run_id,
                "sessionKey": session_key,
                "seq": 1,
                "state": "error",
                "errorMessage": "the model exploded",
            }
            await self.nc.publish(subject, json.dumps(event).encode())
            return
        if "[[slow]]" in message:
            await asyncio.sleep(30)
        words = f"echo: {message}".split(" ")
        text = ""
        for seq, word in enumerate(words, start=1):
            piece = word if not text else " " + word
            text += piece
            event = {
                "runId": run_id,
                "sessionKey": session_key,
                "seq": seq,
                "state": "delta",
                "message": {"role": "assistant", "content": text},
                "delta": piece,
            }
            await self.nc.publish(subject, json.dumps(event).encode())
        final = {
            "runId": run_id,
            "sessionKey": session_key,
            "seq": len(words) + 1,
            "state": "final",
            "message": {"role": "assistant", "content": text},
            "usage": {
                "promptTokens": len(message.split()),
                "completionTokens": len(words),
                "totalTokens": len(message.split()) + len(words),
            },
        }
        await self.nc.publish(subject, json.dumps(final).encode())

    def _start_run(self, session_key: str, message: str) -> str:
        run_id = "run-" + uuid.uuid4().hex[:12]
        asyncio.get_running_loop().create_task(self._emit(session_key, run_id, message))
        return run_id

    async def do_agent(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("agentId") == "ghost":
            raise NotFound("no agent ghost")
        run_id = self._start_run(params["sessionKey"], params["message"])
        return {"runId": run_id, "status": "accepted"}

    async def do_wake(self, params: dict[str, Any]) -> dict[str, Any]:
        now = params["mode"] == "now"
        return {
            "ok": True,
            "mode": params["mode"],
            "agentId": "main",
            "sessionKey": "agent:main:main",
            "queued": 1,
            "runId": self._start_run("agent:main:main", params["text"]) if now else None,
        }

    async def do_chat_send(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "runId": self._start_run(params["sessionKey"], params["message"]),
            "status": "started",
        }

    async def do_chat_abort(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"aborted": True, "runIds": [params.get("runId")]}

    async def do_agent_wait(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"runId": params["runId"], "status": "timeout"}

    async def do_chat_history(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"sessionKey": params["sessionKey"], "messages": []}

    async def do_agents_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "defaultId": "main",
            "agents": [{"id": "main", "name": "Main"}, {"id": "helper", "name": "Helper"}],
        }

    async def do_tools_catalog(self, params: dict[str, Any]) -> dict[str, Any]:
        schema = {"type": "object", "properties": {}}
        return {
            "tools": [
                {"name": "time_now", "description": "the time", "parameters": schema},
                {"name": "exec", "description": "run a command", "parameters": schema},
            ]
        }

    async def do_tools_invoke(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["tool"] != "time_now":
            raise NotFound(f"no tool {params['tool']!r}")
        if params["args"].get("tz") == "Mars/Olympus":
            raise InvalidParams("unknown time zone")
        if params["args"].get("tz") == "Europe/Nowhere":  # valid args, the tool fails
            return {"ok": False, "result": {"error": "unknown timezone", "code": "TOOL_ERROR"}}
        if params["args"].get("tz") == "slow":
            return {"ok": False, "result": {"error": "the tool timed out", "code": "TIMEOUT"}}
        return {"ok": True, "result": {"iso": "2030-01-01T00:00:00Z"}}

    async def do_usage_status(self, params: dict[str, Any]) -> dict[str, Any]:
        tokens = {
            "runs": 0,
            "calls": 0,
            "promptTokens": 0,
            "completionTokens": 0,
            "cacheReadTokens": 0,
            "cacheWriteTokens": 0,
            "totalTokens": 0,
        }
        return {
            "since": 1,
            "until": 2,
            "totals": tokens,
            "byProvider": [],
            "byModel": [],
            "byAgent": [],
            "bucket": "day",
            "series": [],
            "budgets": [],
        }

    async def do_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "services": {"runtime": {"instances": [{"id": "rt-1", "version": "0.1.0"}]}},
            "connections": 0,
            "agents": 2,
            "sessions": 0,
            "uptimeMs": 1234,
        }


@dataclass
class Served:
    url: str
    prefix: str
    nats_url: str
    fake: FakeUpstream
    runtime: RuntimeDouble


@pytest.fixture(scope="session")
async def served(
    nats_url: str, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    prefix = "h" + uuid.uuid4().hex[:8]
    seed = tmp_path_factory.mktemp("seed") / "aisopod.json"
    seed.write_text(
        json.dumps(
            {
                "models": {
                    "providers": [
                        {"id": "echo", "kind": "echo", "models": [{"id": "echo"}]},
                        {
                            "id": "fake",
                            "kind": "openai",
                            "baseUrl": fake.base_url,
                            "apiKey": FAKE_KEY,
                            "models": [{"id": "fake-small"}, {"id": "fake-large"}],
                            "timeoutS": 3,
                            "maxRetries": 1,
                        },
                        {
                            "id": "other",
                            "kind": "openai",
                            "baseUrl": fake.base_url,
                            "apiKey": FAKE_KEY,
                            "models": [{"id": "fake-large"}],
                        },
                        {
                            "id": "wrongkey",
                            "kind": "openai",
                            "baseUrl": fake.base_url,
                            "apiKey": "sk-wrong",
                            "models": [{"id": "w"}],
                        },
                        {
                            "id": "down",
                            "kind": "openai",
                            "baseUrl": f"http://127.0.0.1:{_free_port()}/v1",
                            "models": [{"id": "d"}],
                            "maxRetries": 0,
                        },
                    ]
                },
                "hooks": {
                    "enabled": True,
                    "token": HOOK_TOKEN,
                    "maxBodyBytes": 4096,
                    "mappings": [
                        {
                            "name": "github-push",
                            "path": "github",
                            "match": {"headers.x-github-event": "push"},
                            "action": "agent",
                            "template": "push to {{body.repository.full_name}}",
                        },
                        {
                            "name": "alerts",
                            "match": {"body.severity": ["high", "critical"]},
                            "action": "wake",
                            "template": "alert: {{body.title}}",
                        },
                    ],
                },
            }
        )
    )
    settings = ServiceSettings(
        service="http-api",
        nats_url=nats_url,
        subject_prefix=prefix,
        config_file=seed,
        log_level="WARNING",
        edge_secret=EDGE_SECRET,
    )
    await seed_deployment(nats_url, prefix, seed)
    _, app = build(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        http="httptools",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("http-api did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    nc = await nats.connect(nats_url)
    runtime = RuntimeDouble(nc, prefix)
    await runtime.start()
    yield Served(f"http://127.0.0.1:{port}", prefix, nats_url, fake, runtime)
    await nc.close()
    server.should_exit = True
    await asyncio.wait({task}, timeout=10)


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    # Every request comes "through the edge" unless a test removes the proof.
    async with httpx.AsyncClient(
        base_url=served.url, timeout=10, trust_env=False, headers=EDGE
    ) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    """An admin's bearer token and the edge proof."""
    return dict(ADMIN)


@pytest.fixture
def reader() -> dict[str, str]:
    return dict(READER)


@pytest.fixture
def hook_token() -> str:
    return HOOK_TOKEN
