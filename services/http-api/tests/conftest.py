"""The http-api in process, served by uvicorn on a free port, against real NATS and the fake
upstream. Traefik's part (forwardAuth identity headers) is played by the tests' headers;
the runtime and ratelimit are played by `RuntimeDouble` (the real ones are exercised by
tests/integration/test_http_*.py against the whole stack).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from aisopod.settings import ServiceSettings
from aisopod_fake_upstream.harness import FakeUpstream
from aisopod_http_api.main import build

FAKE_KEY = "sk-unit-fake"
HOOK_TOKEN = "unit-hook-token-0123456789"
ADMIN = {
    "x-aisopod-principal": "operator:test",
    "x-aisopod-role": "operator",
    "x-aisopod-scopes": "operator.admin",
    "x-aisopod-auth-method": "token",
}
READER = {**ADMIN, "x-aisopod-scopes": "operator.read"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    store = tmp_path_factory.mktemp("js")
    binary = Path(sys.executable).parent / "nats-server"
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    yield f"nats://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=FAKE_KEY) as upstream:
        yield upstream


@dataclass
class Served:
    url: str
    prefix: str
    nats_url: str
    fake: FakeUpstream


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
    )
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
    yield Served(f"http://127.0.0.1:{port}", prefix, nats_url, fake)
    server.should_exit = True
    await asyncio.wait({task}, timeout=10)


@pytest.fixture
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10, trust_env=False) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    """The identity headers Traefik's forwardAuth sets for an admin."""
    return dict(ADMIN)


@pytest.fixture
def reader() -> dict[str, str]:
    return dict(READER)


@pytest.fixture
def hook_token() -> str:
    return HOOK_TOKEN
