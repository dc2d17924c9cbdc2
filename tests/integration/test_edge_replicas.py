"""An edge replica that dies mid-load costs the clients nothing on idempotent requests:
Traefik's health check (/ready) drops it and the retry middleware resends what it held."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml

from aisopod_ops.launcher import traefik

pytestmark = pytest.mark.integration

CLIENTS = 8


def _replica_urls(stack, service: str) -> list[str]:
    routes = yaml.safe_load((stack.state_dir / "traefik" / "dynamic" / "routes.yml").read_text())
    return [s["url"] for s in traefik.replica_service(routes, service)["servers"]]


def _pid_of(stack, instance: str) -> int:
    """The live process of one replica (the launcher restarts them under new pids)."""
    wanted = {
        f"AISOPOD_INSTANCE={instance}".encode(),
        f"AISOPOD_STATE_DIR={stack.state_dir}".encode(),
    }
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if wanted <= environ and stat.split(") ", 1)[1][0] != "Z":
            return int(entry.name)
    raise AssertionError(f"no process for {instance}")


async def _all_ready(client: httpx.AsyncClient, urls: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for url in urls:
            try:
                states.append((await client.get(f"{url}/ready")).status_code == 200)
            except httpx.HTTPError:
                states.append(False)
        if all(states):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"replicas not ready again: {urls}")


async def _served_by_all(stack, client: httpx.AsyncClient, count: int) -> None:
    """Until Traefik routes to every replica again (its health check re-added them)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = set()
        for _ in range(4 * count):
            response = await client.get(f"{stack.http_url}/health")
            if response.status_code == 200:
                seen.add(response.json()["instance"])
        if len(seen) >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("Traefik did not route to every replica again")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
async def test_replica_dying_under_load_is_invisible_to_idempotent_requests(
    stack, sig: signal.Signals
) -> None:
    urls = _replica_urls(stack, "http-api")
    assert len(urls) >= 2
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        await _all_ready(client, urls)
        await _served_by_all(stack, client, len(urls))
        # Whatever /v1/models answers today (it depends on auth), it must not change.
        models_status = (await client.get(f"{stack.http_url}/v1/models", headers=auth)).status_code
        assert models_status < 500
        outcomes: dict[str, int] = {}
        cut = [0]  # requests whose connection was cut, answered on the client's one retry
        stop = asyncio.Event()

        async def get(path: str) -> int:
            return (await client.get(f"{stack.http_url}{path}", headers=auth)).status_code

        async def load(path: str, expected: int) -> None:
            while not stop.is_set():
                try:
                    try:
                        status = await get(path)
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        # A SIGKILLed replica takes the requests already written to it:
                        # Traefik's fast proxy resends an idempotent request only when it
                        # could not write it (docs/http-api.md). The client retries once.
                        cut[0] += 1
                        status = await get(path)
                    key = "ok" if status == expected else f"{path} {status}"
                except httpx.HTTPError as exc:
                    key = f"{path} {type(exc).__name__}"
                outcomes[key] = outcomes.get(key, 0) + 1

        tasks = [asyncio.create_task(load("/health", 200)) for _ in range(CLIENTS - 2)]
        tasks += [asyncio.create_task(load("/v1/models", models_status)) for _ in range(2)]
        await asyncio.sleep(0.5)
        victim = _pid_of(stack, "http-api-1" if sig == signal.SIGKILL else "http-api-2")
        os.kill(victim, sig)
        await asyncio.sleep(3.0)  # several health-check intervals with the replica gone
        stop.set()
        await asyncio.gather(*tasks)
        assert outcomes.get("ok", 0) > 50
        assert set(outcomes) == {"ok"}, outcomes  # no 5xx, and every retry answered
        # A drain (SIGTERM) cuts nothing; a kill cuts at most what was in flight on it.
        assert cut[0] <= (CLIENTS if sig == signal.SIGKILL else 0), cut[0]
        # Leave the shared stack as found: the launcher restarts it; Traefik re-adds it.
        await _all_ready(client, urls)
        await _served_by_all(stack, client, len(urls))
