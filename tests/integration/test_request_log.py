"""Request logging in the services (aisopod.requestlog) on the real stack: with
`logging.requests` on, one structured line per HTTP request and per RPC, and the request
id carried over NATS, so one id finds a request in every service's log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from tests.support.ws_client import WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


@contextlib.asynccontextmanager
async def request_logging(env: WsStack) -> AsyncIterator[None]:
    """`logging.requests: true` in the live config, restored afterwards."""
    nc = await env.nats()
    store = ConfigStore(await nc.jetstream().key_value("config"))
    before = await store.load()
    document = before.config.document()
    document["logging"] = {**document["logging"], "requests": True}
    await store.write(GatewayConfig.model_validate(document), before.hash)
    try:
        yield
    finally:
        current = await store.load()
        await store.write(before.config, current.hash)
        await nc.close()


def request_lines(state_dir: Path, service: str) -> list[dict[str, Any]]:
    """The request lines in the logs of every instance of `service`."""
    out = []
    for path in sorted((state_dir / "logs").glob(f"{service}*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"aisopod.requests"' not in line:
                continue
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


async def first_line(
    state_dir: Path, service: str, match: Callable[[dict[str, Any]], bool], timeout: float = 20
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [r for r in request_lines(state_dir, service) if match(r)]
        if found:
            return found[0]
        assert asyncio.get_running_loop().time() < deadline, f"no such {service} request line"
        await asyncio.sleep(0.2)


async def test_one_request_id_finds_an_http_request_in_every_service(stack, env) -> None:
    request_id = f"itest-{uuid.uuid4().hex}"
    async with request_logging(env):

        async def answered() -> httpx.Response | None:
            async with httpx.AsyncClient(timeout=10) as client:
                # An admin's /status crosses to the runtime (/v1/models no longer does:
                # http-api answers it from its own replica).
                response = await client.get(
                    f"{stack.http_url}/status",
                    headers={
                        "authorization": f"Bearer {stack.admin_token}",
                        "x-request-id": request_id,
                    },
                )
            assert response.status_code == 200, response.text
            # Every replica applies the config change on its own: retry until one logs it.
            lines = request_lines(stack.state_dir, "http-api")
            return response if any(r["requestId"] == request_id for r in lines) else None

        deadline = asyncio.get_running_loop().time() + 20
        while await answered() is None:
            assert asyncio.get_running_loop().time() < deadline, "http-api never logged it"
            await asyncio.sleep(0.2)
        http = await first_line(stack.state_dir, "http-api", lambda r: r["requestId"] == request_id)
        assert http["kind"] == "http" and http["method"] == "GET /status"
        assert http["status"] == 200 and http["durationMs"] >= 0
        assert http["principal"] and http["level"] == "INFO"
        # The runtime answered status for it, under the same id.
        rpc = await first_line(stack.state_dir, "runtime", lambda r: r["requestId"] == request_id)
        assert rpc["kind"] == "rpc" and rpc["method"] == "status" and rpc["status"] == "ok"
        assert rpc["principal"] == http["principal"]


async def test_a_websocket_call_is_logged_by_the_gateway_and_the_owner(stack, env) -> None:
    async with request_logging(env), await WsClient.connect(env.url, token=env.token) as ws:
        conn_id = ws.hello["server"]["connId"]

        def ours(record: dict[str, Any]) -> bool:
            return record.get("connId") == conn_id and record["method"] == "sessions.preview"

        deadline = asyncio.get_running_loop().time() + 20
        while not [r for r in request_lines(stack.state_dir, "ws-gateway") if ours(r)]:
            assert asyncio.get_running_loop().time() < deadline, "ws-gateway never logged it"
            # A read only the owner answers (sessions.list is answered at the edge).
            await ws.call("sessions.preview", {"keys": ["agent:main:request-log"]})
            await asyncio.sleep(0.2)
        gateway = await first_line(stack.state_dir, "ws-gateway", ours)
        assert gateway["kind"] == "ws" and gateway["status"] == "ok"
        assert gateway["principal"] and gateway["requestId"]
        owner = await first_line(
            stack.state_dir, "runtime", lambda r: r["requestId"] == gateway["requestId"]
        )
        assert owner["method"] == "sessions.preview"
        assert owner["principal"] == gateway["principal"]
