"""Shared parts of the runtime suites (no tests here): a NATS client that calls
runtime methods as a chosen principal and records the events it publishes.

These suites speak to the runtime over NATS directly (no WebSocket in between), as the
NATS admin user, with the principal headers an edge would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio

from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order
from aisopod.errors import Conflict
from aisopod.principal import Principal
from aisopod.settings import ServiceSettings

OPERATOR = Principal(
    id="tester",
    scopes=("operator.admin",),
    auth_method="token",
    conn_id="conn-tester",
)
APPROVER = Principal(
    id="approver", scopes=("operator.approvals",), auth_method="token", conn_id="conn-approver"
)
EVENTS = ("chat.event", "agent.event", "exec.approval.>", "voicewake.changed")


class RuntimeClient:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()

    @classmethod
    async def connect(cls, nats_url: str, password: str) -> RuntimeClient:
        settings = ServiceSettings(
            service="tests", nats_url=nats_url, nats_user="admin", nats_password=password
        )
        client = cls(await Bus.connect(settings))
        for name in EVENTS:
            await client.bus.nc.subscribe(client.bus.subjects.evt(name), cb=client._on_event)
        await flush_in_order(client.bus.nc, 5)
        return client

    async def close(self) -> None:
        await self.bus.close()

    async def _on_event(self, msg: Any) -> None:
        name = self.bus.subjects.event_name(msg.subject)
        async with self._changed:
            self.events.append((name, json.loads(msg.data)))
            self._changed.notify_all()

    async def call(
        self, method: str, params: dict[str, Any], *, as_: Principal = OPERATOR, timeout: float = 15
    ) -> Any:
        return await self.bus.call(method, params, principal=as_, timeout=timeout)

    def of_run(self, run_id: str, name: str = "chat.event") -> list[dict[str, Any]]:
        return [p for n, p in self.events if n == name and p.get("runId") == run_id]

    async def wait_event(
        self, name: str, match: Callable[[dict[str, Any]], bool], timeout: float = 15
    ) -> dict[str, Any]:
        """The first recorded `name` event satisfying `match`, waiting up to `timeout`."""

        def found() -> dict[str, Any] | None:
            return next((p for n, p in self.events if n == name and match(p)), None)

        async with self._changed:
            async with asyncio.timeout(timeout):
                await self._changed.wait_for(lambda: found() is not None)
        result = found()
        assert result is not None
        return result

    async def chat_final(self, run_id: str, timeout: float = 15) -> dict[str, Any]:
        """The run's last chat.event (final, aborted or error)."""
        return await self.wait_event(
            "chat.event",
            lambda p: p["runId"] == run_id and p["state"] in ("final", "aborted", "error"),
            timeout,
        )

    async def lifecycle_end(self, run_id: str, timeout: float = 15) -> dict[str, Any]:
        """The run's last agent.event (lifecycle end, error, aborted or timeout). Waited for
        on its own: each subscription has its own callback queue, so neither `agent.wait`'s
        reply nor the chat.event final says the agent.event callbacks have caught up."""
        return await self.wait_event(
            "agent.event",
            lambda p: (
                p["runId"] == run_id
                and p["stream"] == "lifecycle"
                and p["data"]["phase"] != "start"
            ),
            timeout,
        )

    async def send_and_wait(self, session_key: str, message: str, **params: Any) -> dict[str, Any]:
        started = await self.call(
            "chat.send", {"sessionKey": session_key, "message": message, **params}
        )
        done = await self.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        return {**done, "runId": started["runId"], "sendStatus": started["status"]}


def new_session(prefix: str = "t") -> str:
    return f"agent:main:{prefix}-{uuid.uuid4().hex[:10]}"


FAKE_AGENT = "fake-small"


async def fake_session(client: RuntimeClient, prefix: str = "t") -> str:
    """A fresh session answering through the fake upstream. Sessions are created by their
    first message (sessions.patch of an unknown key is NOT_FOUND), so the model comes from
    an agent whose model is the fake's."""
    with contextlib.suppress(Conflict):  # created by an earlier test
        await client.call(
            "agents.create", {"id": FAKE_AGENT, "name": FAKE_AGENT, "model": "fake/fake-small"}
        )
    return f"agent:{FAKE_AGENT}:{prefix}-{uuid.uuid4().hex[:10]}"


def fake_requests(fake_url: str, needle: str) -> list[dict[str, Any]]:
    """Chat request bodies the fake upstream recorded whose messages mention `needle`."""
    root = fake_url.removesuffix("/v1")
    data = httpx.get(f"{root}/_requests", timeout=5, trust_env=False).json()["data"]
    return [r["body"] for r in data if needle in json.dumps(r.get("body", {}))]


@pytest_asyncio.fixture(loop_scope="session", name="rt")
async def rt_fixture(stack) -> AsyncIterator[RuntimeClient]:
    client = await RuntimeClient.connect(stack.nats_url, stack.nats_password("admin"))
    try:
        yield client
    finally:
        await client.close()
