"""The bus, RPC wrapper, dedupe and config store against a real nats-server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from nats.js.errors import KeyWrongLastSequenceError

from aisopod import dedupe
from aisopod.bus import Bus
from aisopod.catalogue import methods_for
from aisopod.catalogue.nodes import NodeInfo
from aisopod.catalogue.run_events import ChatEvent, EventMessage
from aisopod.compat.natspy import kv_jetstream
from aisopod.config import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.config.watcher import ConfigWatcher
from aisopod.conformance import Nonconformance
from aisopod.dedupe import Deduper
from aisopod.errors import (
    Conflict,
    InternalError,
    InvalidParams,
    MethodNotFound,
    NotFound,
    Unavailable,
)
from aisopod.principal import Principal
from aisopod.rpc import CallContext, HandlerMismatch, RpcServer, check_handlers
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod.state import ensure_state

OPERATOR = Principal(id="op", scopes=("operator.admin",), auth_method="token")


@pytest.fixture
async def bus(nats_url: str):
    prefix = "t" + uuid.uuid4().hex[:8]
    bus = await Bus.connect(
        ServiceSettings(service="test", nats_url=nats_url, subject_prefix=prefix)
    )
    await ensure_state(bus.js, bus.subjects)
    yield bus
    await bus.close()


async def _server(bus: Bus, handlers: dict[str, Any]) -> RpcServer:
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    server = RpcServer(
        bus,
        service=ServiceName.AUTH,
        version="0.1.0",
        instance="t-1",
        deduper=Deduper(kv, instance="t-1"),
        validate_replies=True,
    )
    await server.start(handlers)
    return server


def _auth_handlers(**overrides: Any) -> dict[str, Any]:
    async def not_found(params: Any, ctx: CallContext) -> Any:
        raise NotFound(f"nothing for {ctx.method}")

    handlers: dict[str, Any] = {spec.name: not_found for spec in methods_for(ServiceName.AUTH)}
    handlers.update(overrides)
    return handlers


def test_check_handlers_refuses_missing_and_unknown() -> None:
    with pytest.raises(HandlerMismatch, match=r"device\.pair\.list"):
        check_handlers(ServiceName.AUTH, {})
    with pytest.raises(HandlerMismatch, match="bogus"):
        check_handlers(ServiceName.AUTH, {**_auth_handlers(), "bogus": None})


async def test_call_validates_params_and_forwards_errors_and_principal(bus: Bus) -> None:
    seen: list[Principal] = []

    async def rename(params: Any, ctx: CallContext) -> NodeInfo:
        seen.append(ctx.principal)
        return NodeInfo(
            node_id=params.node_id, display_name=params.display_name, connected=False, paired=True
        )

    server = await _server(bus, _auth_handlers(**{"node.rename": rename}))
    try:
        result = await bus.call(
            "node.rename", {"nodeId": "n1", "displayName": "Phone"}, principal=OPERATOR
        )
        assert result["nodeId"] == "n1" and result["displayName"] == "Phone"
        assert seen == [OPERATOR]
        with pytest.raises(InvalidParams) as info:
            await bus.call("node.rename", {"nodeId": "n1"}, principal=OPERATOR)
        assert info.value.data["errors"][0]["loc"] == ["displayName"]
        with pytest.raises(NotFound):
            await bus.call("node.pair.list", {}, principal=OPERATOR)
    finally:
        await server.stop()


async def test_a_reply_that_breaks_its_model_is_an_internal_error(
    bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """With validate_replies on, a handler must return its method's result model, with no
    field the model does not declare; anything else is logged and answered INTERNAL_ERROR."""

    def node(**extra: Any) -> NodeInfo:
        return NodeInfo(node_id="n1", connected=True, paired=True, **extra)

    replies: dict[str, Any] = {
        "n-dict": {"nodeId": "n1", "connected": True, "paired": True},
        "n-extra": node(nickname="undeclared"),
        "n-ok": node(),
    }

    async def rename(params: Any, ctx: CallContext) -> Any:
        return replies[params.node_id]

    server = await _server(bus, _auth_handlers(**{"node.rename": rename}))
    try:
        ok = await bus.call(
            "node.rename", {"nodeId": "n-ok", "displayName": "x"}, principal=OPERATOR
        )
        assert ok["nodeId"] == "n1"
        for bad, why in (("n-dict", "got dict, declared NodeInfo"), ("n-extra", "nickname")):
            caplog.clear()
            with pytest.raises(InternalError):
                await bus.call(
                    "node.rename", {"nodeId": bad, "displayName": "x"}, principal=OPERATOR
                )
            assert any(why in r.getMessage() or why in (r.exc_text or "") for r in caplog.records)
    finally:
        await server.stop()


async def test_owner_down_is_unavailable_and_retryable(bus: Bus) -> None:
    with pytest.raises(Unavailable) as info:
        await bus.call("node.rename", {"nodeId": "n", "displayName": "x"}, principal=OPERATOR)
    assert info.value.data["retryable"] is True
    assert not isinstance(info.value, MethodNotFound)


async def test_deduper_runs_once_and_conflicts_while_in_flight(bus: Bus) -> None:
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    deduper = Deduper(kv, instance="a")
    calls = 0
    release = asyncio.Event()

    async def work() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"n": calls}

    first = asyncio.create_task(deduper.run("k1", work))
    await asyncio.sleep(0.05)
    with pytest.raises(Conflict):
        await Deduper(kv, instance="b").run("k1", work)
    release.set()
    assert await first == {"n": 1}
    assert await Deduper(kv, instance="b").run("k1", work) == {"n": 1}
    assert calls == 1

    async def failing() -> None:
        raise NotFound("gone")

    with pytest.raises(NotFound):
        await deduper.run("k2", failing)
    assert await deduper.run("k2", work) == {"n": 2}  # an error is not remembered


async def test_a_claiming_call_reads_while_its_key_is_claimed_and_a_repeat_writes_nothing(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run_claiming`: the call's reads and its key's `pending` create are in flight
    together (the create here is stored only once the read ran: done one after the
    other, this would never finish); a repeat stops at `claimed()` and gets the first
    result, or its replay."""
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    writes = 0
    read = asyncio.Event()
    stored_create = kv.create

    async def create_after_the_read(key: str, value: bytes, *args: Any, **kwargs: Any) -> int:
        async with asyncio.timeout(5):
            await read.wait()
        return await stored_create(key, value)

    async def work(claimed: Any) -> dict[str, int]:
        nonlocal writes
        read.set()
        await claimed()
        writes += 1
        return {"n": writes}

    monkeypatch.setattr(kv, "create", create_after_the_read)
    result, stored = await Deduper(kv, instance="a").run_claiming("c1", work)
    await stored
    monkeypatch.undo()
    assert result == {"n": 1}
    again, nothing = await Deduper(kv, instance="b").run_claiming("c1", work)
    await nothing
    assert again == {"n": 1} and writes == 1

    async def replay(first: Any) -> Any:
        return {"replayed": first}

    replayed, nothing = await Deduper(kv, instance="b").run_claiming("c1", work, on_replay=replay)
    await nothing
    assert replayed == {"replayed": {"n": 1}} and writes == 1


async def test_a_claiming_call_in_flight_conflicts_and_its_claim_decides_over_errors(
    bus: Bus,
) -> None:
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    writes = 0
    release = asyncio.Event()

    async def slow(claimed: Any) -> dict[str, int]:
        nonlocal writes
        await claimed()
        writes += 1
        await release.wait()
        return {"n": writes}

    async def failing_read(claimed: Any) -> None:
        raise NotFound("gone")

    first = asyncio.create_task(Deduper(kv, instance="a").run_claiming("c2", slow))
    deadline = asyncio.get_running_loop().time() + 10
    while writes == 0:  # the first holds its key
        assert asyncio.get_running_loop().time() < deadline, "never claimed"
        await asyncio.sleep(0.01)
    with pytest.raises(Conflict):
        await Deduper(kv, instance="b").run_claiming("c2", slow)
    assert writes == 1
    release.set()
    result, stored = await first
    await stored
    # A repeat whose read fails still gets the first result: its claim decides.
    again, nothing = await Deduper(kv, instance="b").run_claiming("c2", failing_read)
    await nothing
    assert again == result == {"n": 1}
    # A first call whose read fails: its error, and the key is free for a retry.
    with pytest.raises(NotFound):
        await Deduper(kv, instance="a").run_claiming("c3", failing_read)
    retried, stored = await Deduper(kv, instance="a").run_claiming("c3", slow)
    await stored
    assert retried == {"n": 2}


async def test_a_done_entry_whose_ack_is_lost_is_stored_again(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `done` entry went out on a connection that broke: no ack, nothing stored. It is
    sent again, so a repeat of the request gets the result instead of IN_FLIGHT."""
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    js = kv_jetstream(kv)
    calls = 0

    async def work() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    async def lost(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()  # never stored, never acked

    monkeypatch.setattr(dedupe, "ACK_PATIENCE_S", 0.1)
    monkeypatch.setattr(js, "publish_async", lost)
    result, stored = await Deduper(kv, instance="a").run_then_store("k-lost", work)
    await stored
    assert await Deduper(kv, instance="b").run("k-lost", work) == result == {"n": 1}
    assert calls == 1


async def test_a_create_that_meets_its_own_stored_copy_runs_the_call(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pending entry's create was stored, its answer lost, and its retry told "wrong
    last sequence": the entry is this call's own, so it runs (not IN_FLIGHT), once."""
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_dedupe")
    calls = 0

    async def work() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"n": calls}

    stored_create = kv.create

    async def create_then_lose(key: str, value: bytes, *args: Any, **kwargs: Any) -> int:
        await stored_create(key, value)
        raise KeyWrongLastSequenceError

    monkeypatch.setattr(kv, "create", create_then_lose)
    assert await Deduper(kv, instance="a").run("k-own", work) == {"n": 1}
    monkeypatch.undo()
    assert await Deduper(kv, instance="a").run("k-own", work) == {"n": 1}  # replayed
    assert calls == 1


async def test_config_store_compare_and_set_and_watcher(bus: Bus) -> None:
    kv = await bus.js.key_value(f"{bus.subjects.prefix}_config")
    store = ConfigStore(kv)
    assert await store.seed(GatewayConfig()) is True
    assert await store.seed(GatewayConfig()) is False
    base = await store.load()
    watcher = ConfigWatcher(bus, store, service="test", instance="t-1")
    changes: list[str] = []
    watcher.on_change(lambda new, old: changes.append(new.ui.title))
    await watcher.start()
    try:
        a = base.config.model_copy(deep=True)
        a.ui.title = "A"
        b = base.config.model_copy(deep=True)
        b.ui.title = "B"
        results = await asyncio.gather(
            store.write(a, base.hash), store.write(b, base.hash), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1
        assert sum(isinstance(r, Conflict) for r in results) == 1
        assert await watcher.wait_for_hash(winners[0].hash, 5)
        assert changes == [winners[0].config.ui.title]
    finally:
        await watcher.stop()


async def test_run_events_are_checked_against_their_model_at_publish(bus: Bus) -> None:
    """The test session sets AISOPOD_VALIDATE_REPLIES, so this bus checks every event."""
    assert bus.validate_events
    good = ChatEvent(
        run_id="r1",
        session_key="agent:main:x",
        seq=1,
        state="final",
        message=EventMessage(role="assistant", content="hi"),
        usage=None,
    )
    assert await bus.publish_event("chat.event", good.wire()) > 0
    for bad in (
        {**good.wire(), "state": "done"},  # not a state
        {**good.wire(), "tokens": 3},  # undeclared
        {"runId": "r1", "sessionKey": "k", "seq": 1, "stream": "tool"},  # agent.event sans data
    ):
        name = "agent.event" if "stream" in bad else "chat.event"
        with pytest.raises(Nonconformance):
            await bus.publish_event(name, bad)
    # Every event has a model (catalogue.payloads), not only the run events.
    cron = {"jobId": "j1", "action": "started", "status": "running", "runId": "c1"}
    assert await bus.publish_event("cron.event", cron) > 0
    with pytest.raises(Nonconformance):
        await bus.publish_event("cron.event", {**cron, "action": "exploded"})
