"""Requests after hello: framing, batches, notifications, scopes, forwarding, limits."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from nats.aio.msg import Msg

from aisopod import codec
from aisopod.bus import encode_reply
from aisopod.catalogue import CATALOGUE
from aisopod.compat.natspy import flush_in_order
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.errors import NotFound
from aisopod.listings import (
    DiscoveredEntry,
    ProviderDiscovery,
    discovery_key,
    provider_fingerprint,
)
from aisopod.principal import Principal
from aisopod.state import bucket_name
from tests.support.ws_client import RpcError, WsClient


@pytest.fixture(scope="module")
async def owner(gw):
    """A method owner on the bus: `sessions.preview` (a read ws-gateway always forwards)
    answers with the principal it was sent and waits `delayMs` when asked."""
    seen: list[dict[str, str]] = []

    async def handle(msg: Msg) -> None:
        seen.append(dict(msg.headers or {}))
        body = orjson.loads(msg.data)
        await asyncio.sleep(body.get("delayMs", 0) / 1000)
        principal = Principal.from_headers(msg.headers)
        if body.get("missing"):
            await msg.respond(encode_reply(error=NotFound("no such thing")))
            return
        await msg.respond(encode_reply({"principal": principal.id, "scopes": principal.scopes}))

    async def on_msg(msg: Msg) -> None:
        _spawn(handle(msg))

    sub = await gw.nc.subscribe(f"{gw.prefix}.rpc.sessions.preview", cb=on_msg)
    await flush_in_order(gw.nc, 5)  # live before the gateway (another connection) can ask
    yield seen
    await sub.unsubscribe()


_tasks: set[asyncio.Task[None]] = set()


def _spawn(work) -> None:  # type: ignore[no-untyped-def]
    task = asyncio.ensure_future(work)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def test_forwarded_with_principal_headers(gw, owner) -> None:
    async with await WsClient.connect(gw.url, token="reader-token", scopes=["operator.read"]) as ws:
        result = await ws.call("sessions.preview", {})
        assert result == {"principal": "reader", "scopes": ["operator.read"]}
        headers = owner[-1]
        assert headers["Aisopod-Conn-Id"] == ws.hello["server"]["connId"]
        assert headers["Aisopod-Client-Ip"] == "127.0.0.1"
        with pytest.raises(RpcError) as info:
            await ws.call("sessions.preview", {"missing": True})
        assert info.value.code == -32004  # the owner's error, unchanged


async def test_responses_complete_out_of_order(gw, owner) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        slow = asyncio.create_task(ws.request("sessions.preview", {"delayMs": 300}))
        fast = await ws.request("health")
        assert "result" in fast and not slow.done()
        assert (await slow)["result"]["principal"] == "admin"


async def test_owner_down_is_unavailable_retryable(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("chat.history", {"sessionKey": "main"})
        assert info.value.code == -32013 and info.value.data["retryable"] is True


async def test_unknown_method_and_invalid_params(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("no.such.method")
        assert info.value.code == -32601
        with pytest.raises(RpcError) as info:
            await ws.call("subscribe", {"events": "chat.*"})
        assert info.value.code == -32602 and info.value.data["errors"]


async def test_notifications_get_no_reply_and_batches_get_arrays(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        await ws.notify("health")
        responses = await ws.batch(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "health"},
                {"jsonrpc": "2.0", "method": "health"},
                {"id": "b", "method": "no.such"},
                7,
            ]
        )
        assert len(responses) == 3  # none for the notification
        by_id = {r["id"]: r for r in responses}
        assert "result" in by_id[1]
        assert by_id["b"]["error"]["code"] == -32601
        assert by_id[None]["error"]["code"] == -32600
        await ws.send_raw("[]")
        assert (await ws.recv_raw())["error"]["code"] == -32600
        await ws.send_raw("{oops")
        parse = await ws.recv_raw()
        assert parse["id"] is None and parse["error"]["code"] == -32700
        # Nothing was answered for the first notification: the next reply is ours.
        assert "result" in await ws.request("health")
        assert ws._raw.empty()


async def test_missing_scope_and_wrong_role(gw) -> None:
    async with await WsClient.connect(gw.url, token="reader-token", scopes=["operator.read"]) as ws:
        with pytest.raises(RpcError) as info:
            await ws.call("config.set", {"config": {}, "baseHash": "x"})
        assert info.value.code == -32003
        assert info.value.data == {"code": "MISSING_SCOPE", "requiredScope": "operator.admin"}
        with pytest.raises(RpcError) as info:
            await ws.call("node.event", {"event": "x"})
        assert info.value.detail == "UNAUTHORIZED_ROLE"


async def test_more_than_ten_forbidden_close_1008(gw) -> None:
    ws = await WsClient.connect(gw.url, token="reader-token", scopes=["operator.read"])
    for _ in range(10):
        with pytest.raises(RpcError):
            await ws.call("config.set", {"config": {}, "baseHash": "x"})
    await ws.call("health")  # a non-FORBIDDEN reply resets the count
    for _ in range(11):
        with pytest.raises(RpcError):
            await ws.call("config.set", {"config": {}, "baseHash": "x"})
    assert await ws.wait_closed() == (1008, "too many forbidden requests")


async def test_request_rate_limit(gw) -> None:
    async with await WsClient.connect(gw.url, token="admin-token") as ws:
        responses = await ws.batch([{"id": i, "method": "health"} for i in range(80)])
        limited = [r for r in responses if "error" in r]
        assert limited and all(r["error"]["code"] == -32029 for r in limited)
        assert limited[0]["error"]["data"]["retryAfterMs"] >= 1
        assert len(responses) - len(limited) >= 50  # the burst


async def test_timeout_for_uses_timeout_ms_plus_margin(gw) -> None:
    dispatcher = gw.gateway.dispatcher
    settings = gw.gateway.host.settings
    spec = CATALOGUE.__getitem__
    assert dispatcher.timeout_for(spec("chat.send"), {}) == settings.request_timeout_s
    margin = settings.nats_retry_s + 2.0  # an owner may ride out a NATS election first
    assert dispatcher.timeout_for(spec("agent.wait"), {"timeoutMs": 60_000}) == 60.0 + margin
    assert dispatcher.timeout_for(spec("agent"), {"wait": True}) == 600.0
    assert dispatcher.timeout_for(spec("chat.send"), {"timeoutMs": True}) == (
        settings.request_timeout_s
    )


async def test_edge_reads_are_answered_without_the_owner(gw) -> None:
    """No runtime on this bus: the configuration reads come from the gateway's replica,
    redacted as the owner does it; agents.list without its default agent stored is the
    owner's (who creates it), so it is UNAVAILABLE here."""
    snapshot = gw.host.config.snapshot
    async with await WsClient.connect(gw.url, token="reader-token", scopes=["operator.read"]) as ws:
        got = await ws.call("config.get")
        assert got == {
            "config": snapshot.config.redacted(),
            "hash": snapshot.hash,
            "revision": snapshot.revision,
        }
        assert "properties" in await ws.call("config.schema")
        with pytest.raises(RpcError) as info:
            await ws.call("cron.list", {"includeDisabled": "nope"})
        assert info.value.code == -32602
        assert await ws.call("cron.list") == {"jobs": []}
        models = await ws.call("models.list")  # the default echo provider lists nothing upstream
        assert [m["id"] for m in models["models"]] == ["echo/echo"]
        with pytest.raises(RpcError) as info:
            await ws.call("agents.list")
        assert info.value.code == -32013


async def test_a_kept_edge_reply_follows_the_replica_and_never_answers_other_params(gw) -> None:
    """Each edge reply is kept per (method, params, replica revisions): a write to the
    bucket (here straight into KV, as the owner would) is seen by the next reads, and
    params that would not validate still get their error, whatever was kept before."""
    async with await WsClient.connect(gw.url, token="reader-token", scopes=["operator.read"]) as ws:
        assert await ws.call("cron.list", {"includeDisabled": True}) == {"jobs": []}
        assert await ws.call("cron.list", {"includeDisabled": True}) == {"jobs": []}  # kept
        with pytest.raises(RpcError) as info:
            await ws.call("cron.list", {"includeDisabled": "nope"})
        assert info.value.code == -32602
        job = {
            "jobId": "kept-1",
            "name": "kept",
            "schedule": {"kind": "every", "everyMs": 3_600_000},
            "payload": {"kind": "systemEvent", "text": "x"},
            "enabled": False,
            "createdAtMs": 1,
            "updatedAtMs": 1,
            "anchorMs": 1,
        }
        cron = await gw.host.kv("cron")
        await cron.put("job.kept-1", orjson.dumps(job))
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                listed = await ws.call("cron.list", {"includeDisabled": True})
                if listed["jobs"] or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.02)
            assert [j["jobId"] for j in listed["jobs"]] == ["kept-1"]
            assert await ws.call("cron.list") == {"jobs": []}  # disabled: not listed
        finally:
            await cron.delete("job.kept-1")


async def test_models_list_at_the_edge_holds_until_the_stored_discovery_expires(gw) -> None:
    """A discovering provider's models come from the runtime's entry in KV `models`; a
    kept reply is not reused past the entry's expiry: the read then goes to the owner
    (absent on this bus: UNAVAILABLE)."""
    js = gw.nc.jetstream()
    store = ConfigStore(await js.key_value(bucket_name(gw.prefix, "config")))
    before = await store.load()
    document = before.config.document()
    provider = {"id": "up", "kind": "openai", "baseUrl": "http://127.0.0.1:9/v1", "models": []}
    document["models"] = {**document["models"], "providers": [provider]}
    config = GatewayConfig.model_validate(document)
    changed = await store.write(config, before.hash)
    assert await gw.host.config.wait_for_hash(changed.hash, 10)
    kv = await js.key_value(bucket_name(gw.prefix, "models"))
    now = int(time.time() * 1000)
    entry = ProviderDiscovery(
        provider_id="up",
        fingerprint=provider_fingerprint(config.models.providers[0]),
        fetched_at_ms=now,
        expires_at_ms=now + 1500,
        ok=True,
        models=[DiscoveredEntry(id="m1", context_window=100)],
    )
    await kv.put(discovery_key("up"), codec.dumps(codec.to_wire(entry)))
    try:
        async with await WsClient.connect(
            gw.url, token="reader-token", scopes=["operator.read"]
        ) as ws:
            deadline = asyncio.get_running_loop().time() + 10
            while True:  # the replica applies the put after its watch delay
                try:
                    listed = await ws.call("models.list")
                    break
                except RpcError:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.02)
            assert [(m["id"], m["source"]) for m in listed["models"]] == [("up/m1", "upstream")]
            while True:  # kept, until the entry expires; then the owner's (none here)
                try:
                    assert await ws.call("models.list") == listed
                except RpcError as exc:
                    assert exc.code == -32013
                    break
                assert time.time() * 1000 < entry.expires_at_ms + 5000
                await asyncio.sleep(0.05)
            assert time.time() * 1000 >= entry.expires_at_ms
    finally:
        await kv.delete(discovery_key("up"))
        current = await store.load()
        restored = await store.write(before.config, current.hash)
        assert await gw.host.config.wait_for_hash(restored.hash, 10)
