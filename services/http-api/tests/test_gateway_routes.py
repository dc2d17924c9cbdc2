"""/v1/models, /status, /tools/invoke, /health, the OpenAPI document, generic errors."""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import openai

from aisopod import codec
from aisopod.config.store import ConfigStore
from aisopod.listings import (
    DiscoveredEntry,
    ProviderDiscovery,
    discovers_models,
    discovery_key,
    provider_fingerprint,
)
from aisopod.state import bucket_name
from aisopod_http_api.main import build


async def test_models_list(served, admin) -> None:
    sdk = openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="x", default_headers=admin)
    models = [m.id async for m in sdk.models.list()]
    assert models[:2] == ["aisopod/main", "aisopod/helper"]
    assert "fake/fake-small" in models and "other/fake-large" in models
    assert not any(m.startswith("echo/") for m in models)  # the runtime's own, not proxied
    one = await sdk.models.retrieve("fake/fake-small")
    assert one.owned_by == "fake"


async def test_models_list_and_route_what_the_upstreams_listed(served, client, admin) -> None:
    """With a current discovery stored for every discovering provider (the runtime's job;
    written here by hand), /v1/models lists the discovered ids after the configured ones,
    from http-api's replica, and the proxy takes them, qualified or bare."""
    nc = await nats.connect(served.nats_url)
    js = nc.jetstream()
    config = await ConfigStore(await js.key_value(bucket_name(served.prefix, "config"))).load()
    kv = await js.key_value(bucket_name(served.prefix, "models"))
    now = int(time.time() * 1000)
    keys = []
    for provider in config.config.models.providers:
        if not discovers_models(provider):
            continue
        found = ["fake-large", "fake-huge"] if provider.id == "other" else []
        entry = ProviderDiscovery(
            provider_id=provider.id,
            fingerprint=provider_fingerprint(provider),
            fetched_at_ms=now,
            expires_at_ms=now + 600_000,
            ok=bool(found),
            models=[DiscoveredEntry(id=m) for m in found],
        )
        keys.append(discovery_key(provider.id))
        await kv.put(keys[-1], codec.dumps(codec.to_wire(entry)))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            listed = (await client.get("/v1/models", headers=admin)).json()["data"]
            ids = [m["id"] for m in listed]
            if "other/fake-huge" in ids or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        others = [m for m in listed if m["owned_by"] == "other"]
        assert [m["id"] for m in others] == ["other/fake-large", "other/fake-huge"]
        for model in ("other/fake-huge", "fake-huge"):
            answer = await client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                headers=admin,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["model"] == "fake-huge"
    finally:
        for key in keys:
            await kv.delete(key)
        await nc.close()
    # Without them: the runtime's models.list (absent here), so the configured models only.
    deadline = asyncio.get_running_loop().time() + 10
    while "other/fake-huge" in ids and asyncio.get_running_loop().time() < deadline:
        ids = [m["id"] for m in (await client.get("/v1/models", headers=admin)).json()["data"]]
        await asyncio.sleep(0.05)
    assert "other/fake-huge" not in ids and "other/fake-large" in ids


async def test_status(client: httpx.AsyncClient, reader, admin) -> None:
    anonymous = await client.get("/status")
    # auth's refusal, as the edge gave it when auth was Traefik's forwardAuth.
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="aisopod"'
    error = anonymous.json()["error"]
    assert anonymous.json() == {"ok": False, "error": {**error, "type": "unauthenticated"}}
    assert error["code"] == "AUTH_TOKEN_MISMATCH"
    # A reader's status is built from http-api's own replicas (the stub owner says 1234);
    # no agent, session or connection is stored on this bus.
    # (Until its replicas are warm and the first discovery is in, the owner answers.)
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        response = await client.get("/status", headers=reader)
        assert response.status_code == 200
        status = response.json()
        if status["uptimeMs"] != 1234 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert status["uptimeMs"] != 1234 and "internals" not in status
    assert (status["agents"], status["sessions"], status["connections"]) == (0, 0, 0)
    assert "http-api" in status["services"]
    # An admin's carries the internals: the owner's answer.
    full = await client.get("/status", headers=admin)
    assert full.status_code == 200 and full.json()["uptimeMs"] == 1234


async def test_tools(client: httpx.AsyncClient, served, admin, reader) -> None:
    listed = await client.get("/tools/invoke", headers=reader)
    assert [t["name"] for t in listed.json()["tools"]] == ["time_now"]  # exec is HTTP-denied
    ok = await client.post("/tools/invoke", json={"tool": "time_now", "args": {}}, headers=admin)
    assert ok.json() == {"ok": True, "result": {"iso": "2030-01-01T00:00:00Z"}}
    calls = len(served.runtime.params("tools.invoke"))
    denied = await client.post("/tools/invoke", json={"tool": "exec", "args": {}}, headers=admin)
    assert denied.status_code == 404
    assert len(served.runtime.params("tools.invoke")) == calls  # never reached the runtime
    unknown = await client.post("/tools/invoke", json={"tool": "nope", "args": {}}, headers=admin)
    assert unknown.status_code == 404
    bad = await client.post(
        "/tools/invoke", json={"tool": "time_now", "args": {"tz": "Mars/Olympus"}}, headers=admin
    )
    assert bad.status_code == 400
    failed = await client.post(
        "/tools/invoke", json={"tool": "time_now", "args": {"tz": "Europe/Nowhere"}}, headers=admin
    )
    assert failed.status_code == 422, failed.text
    assert failed.json() == {
        "ok": False,
        "error": {"type": "tool_error", "message": "unknown timezone"},
        "result": {"error": "unknown timezone", "code": "TOOL_ERROR"},
    }
    assert failed.headers["x-content-type-options"] == "nosniff"
    slow = await client.post(
        "/tools/invoke", json={"tool": "time_now", "args": {"tz": "slow"}}, headers=admin
    )
    assert slow.status_code == 504 and slow.json()["error"]["type"] == "timeout"
    shape = await client.post("/tools/invoke", json={"tool": "time_now"}, headers=admin)
    assert shape.status_code == 400 and shape.json()["ok"] is False
    read_only = await client.post(
        "/tools/invoke", json={"tool": "time_now", "args": {}}, headers=reader
    )
    assert read_only.status_code == 403


async def test_health_and_unknown_routes(client: httpx.AsyncClient, reader) -> None:
    health = await client.get("/health")
    assert health.json()["ok"] is True and health.headers["cache-control"] == "no-store"
    assert health.headers["x-request-id"] and health.headers["referrer-policy"] == "no-referrer"
    given = await client.get("/health", headers={"x-request-id": "trace-123"})
    assert given.headers["x-request-id"] == "trace-123"
    missing = await client.get("/v1/nothing", headers=reader)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    plain = await client.get("/nothing-here", headers=reader)
    assert plain.status_code == 404 and plain.json()["ok"] is False


def test_openapi_lists_every_route() -> None:
    _, app = build()
    document = app.app.openapi()
    paths = document["paths"]
    for path, method in [
        ("/v1/chat/completions", "post"),
        ("/v1/responses", "post"),
        ("/v1/models", "get"),
        ("/hooks/wake", "post"),
        ("/hooks/agent", "post"),
        ("/tools/invoke", "get"),
        ("/tools/invoke", "post"),
        ("/status", "get"),
        ("/canvas/{path}", "get"),
        ("/a2ui/", "get"),
    ]:
        assert method in paths[path], (path, method)
    schemas = document["components"]["schemas"]
    assert {"ChatCompletionRequest", "CreateResponseBody", "PushSurface"} <= set(schemas)


async def test_tools_body_with_a_huge_number_is_not_a_server_error(
    client: httpx.AsyncClient, admin
) -> None:
    # Found by schemathesis: a JSON integer beyond 64 bits once broke the NATS encoding.
    body = b'{"tool": "time_now", "args": {"n": 6637351183440567861248}}'
    response = await client.post(
        "/tools/invoke", content=body, headers={**admin, "content-type": "application/json"}
    )
    assert response.status_code == 200
