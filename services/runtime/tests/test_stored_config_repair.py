"""A stored configuration the runtime cannot use in full does not keep it from starting.

The document is written straight into KV `config`, as a version without today's validation
or a hand edit would have: a provider whose `apiKey` is not ASCII (it cannot go out in a
header). The runtime (built as the service builds it, on a real nats-server) must start,
answer, name the broken provider wherever it is asked for, keep the others working, and
take the repair by `config.patch` on top of the stored document.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aisopod import codec
from aisopod.bus import Bus
from aisopod.config.store import CONFIG_KEY
from aisopod.errors import InvalidParams, Unavailable
from aisopod.host import ServiceHost
from aisopod.principal import Principal
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod.state import bucket_name
from aisopod_runtime import __version__
from aisopod_runtime.main import build_handlers

ADMIN = Principal(id="operator", scopes=("operator.admin",), auth_method="token", conn_id="c1")

ECHO = {"id": "echo", "kind": "echo", "models": [{"id": "echo"}], "chunkDelayMs": 0}
# Port 9 (discard) refuses connections: after the repair a run reaches the provider and
# fails there, which shows the provider is built without needing an upstream.
OPENAI = {
    "id": "openai",
    "kind": "openai",
    "baseUrl": "http://127.0.0.1:9/v1",
    "models": [{"id": "gpt-4o-mini"}],
    "maxRetries": 0,
    "discoverModels": False,
}
BAD_DOCUMENT: dict[str, Any] = {
    "ui": {"title": "kept through the repair"},
    "models": {
        "providers": [ECHO, {**OPENAI, "apiKey": "sk-\u2026"}],
        "agents": {"model": "openai/gpt-4o-mini"},
    },
}


def settings(nats_url: str, prefix: str, state_dir: Path) -> ServiceSettings:
    return ServiceSettings(
        service=ServiceName.RUNTIME.value,
        nats_url=nats_url,
        subject_prefix=prefix,
        state_dir=state_dir,
        drain_timeout_s=1,
    )


@pytest.fixture
async def broken_runtime(nats_url: str, tmp_path: Path) -> AsyncIterator[Bus]:
    """A runtime started on BAD_DOCUMENT, and a client bus of its prefix."""
    prefix = "c" + uuid.uuid4().hex[:8]
    service = settings(nats_url, prefix, tmp_path)
    client = await Bus.connect(service.model_copy(update={"service": "tests"}))
    # A first start provisions the buckets and seeds the defaults, as an install would.
    first = ServiceHost(service, ServiceName.RUNTIME, __version__)
    await first.start()
    await first.stop()
    kv = await client.js.key_value(bucket_name(prefix, "config"))
    await kv.put(CONFIG_KEY, codec.canonical(BAD_DOCUMENT))
    host = ServiceHost(service, ServiceName.RUNTIME, __version__)
    await host.start()
    try:
        await host.rpc.start(await build_handlers(host))
        yield client
    finally:
        await host.stop()
        await client.close()


async def call(bus: Bus, method: str, params: dict[str, Any]) -> Any:
    return await bus.call(method, params, principal=ADMIN, timeout=15)


async def run_to_end(bus: Bus, session_key: str) -> dict[str, Any]:
    sent = await call(bus, "chat.send", {"sessionKey": session_key, "message": "hi"})
    deadline = time.monotonic() + 30
    while True:
        waited = await call(bus, "agent.wait", {"runId": sent["runId"], "timeoutMs": 5_000})
        if waited["status"] != "timeout" or time.monotonic() > deadline:
            result: dict[str, Any] = waited
            return result


async def test_runtime_starts_on_a_stored_document_that_fails_validation_and_is_repaired(
    broken_runtime: Bus,
) -> None:
    bus = broken_runtime

    # It answers, and says what it does not use and why.
    status = await call(bus, "status", {})
    config_state = status["internals"]["config"]
    assert "openai" in config_state["unavailableProviders"]
    assert "apiKey" in config_state["unavailableProviders"]["openai"]
    got = await call(bus, "config.get", {})
    assert any("models.providers[1].apiKey" in p and "openai" in p for p in got["problems"])
    assert got["config"]["ui"]["title"] == "kept through the repair"

    # A run on the broken provider is refused naming it and why; the others still run.
    with pytest.raises(Unavailable) as refused:
        await call(bus, "chat.send", {"sessionKey": "agent:main:broken", "message": "hi"})
    assert refused.value.detail_code == "PROVIDER_UNAVAILABLE"
    assert refused.value.data["provider"] == "openai"
    assert "apiKey" in refused.value.message
    await call(bus, "agents.create", {"id": "echoer", "name": "echoer", "model": "echo/echo"})
    echoed = await run_to_end(bus, "agent:echoer:main")
    assert echoed["status"] == "ok", echoed

    # A write that leaves the broken entry broken is refused naming it, not dropped silently.
    with pytest.raises(InvalidParams) as still_bad:
        await call(bus, "config.patch", {"patch": {"ui": {"title": "x"}}, "baseHash": got["hash"]})
    assert "apiKey" in str(still_bad.value.data)

    # The repair: the providers list with a usable key, on top of the stored document.
    fixed = [ECHO, {**OPENAI, "apiKey": "sk-test"}]
    patched = await call(
        bus,
        "config.patch",
        {"patch": {"models": {"providers": fixed}}, "baseHash": got["hash"]},
    )
    assert patched["config"]["ui"]["title"] == "kept through the repair"
    repaired = await call(bus, "config.get", {})
    assert "problems" not in repaired
    assert "unavailableProviders" not in (await call(bus, "status", {}))["internals"]["config"]
    # The provider is built now: the run reaches it (and fails at the closed port).
    reached = await run_to_end(bus, "agent:main:broken")
    assert reached["status"] == "error", reached
    assert "unavailable" not in reached.get("error", ""), reached
