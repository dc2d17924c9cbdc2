"""JetStream isolation between services (docs/quality.md: NATS users and subject permissions stop
one service from impersonating another): each service user reaches only its own state.

Each check connects as the service's own NATS user of the running stack and tries a real
client operation; a refusal is the server's permissions violation (a JetStream request then
gets no answer, so the operation fails fast with the violation reported to the client).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.log_audit import state_dirs_under

pytestmark = pytest.mark.integration

Operation = Callable[[NATS], Awaitable[object]]
PROBE = "permission-probe"


@asynccontextmanager
async def connected(stack, user: str) -> AsyncIterator[tuple[NATS, list[Exception]]]:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        stack.nats_url,
        user=user,
        password=stack.nats_password(user),
        error_cb=on_error,
        connect_timeout=2,
        allow_reconnect=False,
        name=PROBE,  # the after-all audit tells these violations from a service's
    )
    try:
        yield nc, errors
    finally:
        await nc.close()


async def refused(stack, user: str, operation: Operation) -> bool:
    """True when the server refused the operation with a permissions violation."""
    async with connected(stack, user) as (nc, errors):
        try:
            await asyncio.wait_for(operation(nc), 1.5)
        except Exception:
            pass
        else:
            return False
        deadline = asyncio.get_running_loop().time() + 10
        while not errors and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return any("permissions violation" in str(e).lower() for e in errors)


def kv_get(bucket: str, key: str) -> Operation:
    async def run(nc: NATS) -> object:
        kv = await nc.jetstream(timeout=1).key_value(bucket)
        return await kv.get(key)

    return run


def kv_put(bucket: str, key: str) -> Operation:
    async def run(nc: NATS) -> object:
        # Straight to the bucket's subject: binding (STREAM.INFO) may be allowed for reading.
        return await nc.jetstream(timeout=1).publish(f"$KV.{bucket}.{key}", b"{}")

    return run


def stream_info(stream: str) -> Operation:
    async def run(nc: NATS) -> object:
        return await nc.jetstream(timeout=1).stream_info(stream)

    return run


def shorten_retention(stream: str) -> Operation:
    """A reader rewriting a stream's limits (max_age 1 s) would expire what it may only read."""

    async def run(nc: NATS) -> object:
        js = nc.jetstream(timeout=1)
        config = (await js.stream_info(stream)).config
        config.max_age = 1.0
        return await js.update_stream(config)

    return run


# (user, what it tries): secrets and other services' records are out of reach.
REFUSED = [
    ("ws-gateway", kv_get("auth", "admin")),
    ("ws-gateway", kv_get("devices", "any")),
    ("ws-gateway", kv_put("devices", "evil")),
    ("ws-gateway", kv_put("config", "gateway")),
    # Its edge-read replicas may read agents and cron, and its sessions index the sessions
    # bucket, never write them.
    ("ws-gateway", kv_put("agents", "agent.evil")),
    ("ws-gateway", kv_put("cron", "job.evil")),
    ("ws-gateway", kv_put("sessions", "s.evil")),
    # Nor the runtime's /models discoveries that models.list is answered from.
    ("ws-gateway", kv_put("models", "provider.evil")),
    # Readers may look streams up, never change their limits (only the writer reconciles).
    ("ws-gateway", shorten_retention("KV_agents")),
    ("ws-gateway", shorten_retention("EVENTS")),
    ("http-api", shorten_retention("KV_config")),
    ("auth", shorten_retention("LOGS")),
    ("http-api", kv_put("config", "gateway")),
    # Its edge-read replicas (/v1/models, /status) may read agents, sessions and presence,
    # never write them; approvals and devices: no.
    ("http-api", kv_put("sessions", "evil")),
    ("http-api", kv_put("agents", "agent.evil")),
    ("http-api", kv_put("presence", "fake")),
    ("http-api", kv_put("models", "provider.evil")),
    ("http-api", shorten_retention("KV_sessions")),
    ("http-api", kv_get("approvals", "any")),
    ("http-api", kv_get("devices", "any")),
    ("http-api", stream_info("TRANSCRIPTS")),
    ("ratelimit", kv_get("devices", "any")),
    ("ratelimit", kv_put("presence", "fake")),
    ("runtime", kv_get("auth", "admin")),
    ("runtime", kv_put("devices", "evil")),
    ("auth", kv_put("config", "gateway")),
    ("auth", kv_put("sessions", "evil")),
    ("auth", kv_get("models", "provider.fake")),
]


@pytest.mark.parametrize(
    ("user", "operation"), REFUSED, ids=[f"{u}-{i}" for i, (u, _) in enumerate(REFUSED)]
)
async def test_a_service_cannot_reach_another_services_state(stack, user, operation) -> None:
    assert await refused(stack, user, operation)


async def test_each_service_still_reaches_its_own_state(stack) -> None:
    """The controls: the same kinds of operation on a service's own state succeed."""

    async def config_read(nc: NATS) -> object:
        kv = await nc.jetstream(timeout=2).key_value("config")
        return (await kv.get("gateway")).value

    for user in ("ws-gateway", "http-api", "auth", "ratelimit", "runtime"):
        async with connected(stack, user) as (nc, errors):
            assert await config_read(nc), user
            assert not errors, (user, errors)
    async with connected(stack, "ws-gateway") as (nc, errors):
        assert await nc.jetstream(timeout=2).publish("$KV.presence.probe", b"{}")
        await (await nc.jetstream(timeout=2).key_value("presence")).delete("probe")
        assert (await nc.jetstream(timeout=2).stream_info("EVENTS")).config.name == "EVENTS"
        agents = await nc.jetstream(timeout=2).key_value("agents")
        assert (await agents.status()).bucket == "agents"
        sessions = await nc.jetstream(timeout=2).key_value("sessions")
        assert (await sessions.status()).bucket == "sessions"
        models = await nc.jetstream(timeout=2).key_value("models")
        assert (await models.status()).bucket == "models"
        assert not errors
    async with connected(stack, "runtime") as (nc, errors):
        assert await nc.jetstream(timeout=2).publish("$KV.wizard.probe", b"{}")
        await (await nc.jetstream(timeout=2).key_value("wizard")).purge("probe")
        assert not errors


@pytest.mark.after_all
def test_no_service_was_refused_by_nats_in_any_stack(
    stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """After every suite ran: a permissions violation by a service itself (not a probe of
    these tests) means a grant is missing, and the service's call timed out somewhere.

    Replies to inboxes are let through by `allow_responses`, which the server keeps in
    memory: a reply to a request received before a NATS restart (the reliability suite
    restarts it) is refused, and its requester retries. Those are not missing grants."""
    dirs = {stack.state_dir, *state_dirs_under(tmp_path_factory.getbasetemp())}
    found = [
        line.strip()[-200:]
        for state_dir in sorted(dirs)
        if (state_dir / "logs" / "nats.log").is_file()
        for line in (state_dir / "logs" / "nats.log").read_text(errors="replace").splitlines()
        if "Violation" in line and f':{PROBE}"' not in line and 'Subject "_INBOX.' not in line
    ]
    assert found == []
