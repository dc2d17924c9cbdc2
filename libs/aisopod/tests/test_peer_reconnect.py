"""A request whose owner's NATS connection died is asked again when the owner is back,
though the asker's own connection never dropped (bus.py, PEER_RECONNECTED).

The owner reaches nats-server through a TCP relay the test can cut: a real disconnect and
reconnect of nats-py, with whatever was in flight on the cut connection lost, as when a
cluster node is killed under it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from aisopod.bus import Bus, resendable
from aisopod.compat.natspy import flush_in_order
from aisopod.settings import ServiceSettings
from tests.support.natsrelay import Relay


@dataclass
class Pair:
    """An asker on nats-server directly and an owner behind a relay the test can cut."""

    prefix: str
    relay: Relay
    asker: Bus
    owner: Bus


@pytest.fixture
async def pair(nats_url: str) -> AsyncIterator[Pair]:
    prefix = "t" + uuid.uuid4().hex[:8]
    relay = Relay(nats_url)
    owner_url = await relay.start()
    asker = await Bus.connect(
        ServiceSettings(service="test", nats_url=nats_url, subject_prefix=prefix, instance="a")
    )
    owner = await Bus.connect(
        ServiceSettings(service="test", nats_url=owner_url, subject_prefix=prefix, instance="o")
    )
    yield Pair(prefix, relay, asker, owner)
    await owner.close()
    await asker.close()
    await relay.close()


async def test_a_request_lost_with_its_owners_connection_is_asked_again(pair: Pair) -> None:
    prefix, relay, asker, owner = pair.prefix, pair.relay, pair.asker, pair.owner
    subject = f"{prefix}.rpc.orphaned"
    copies: list[bytes] = []

    async def serve(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg.data)
        if len(copies) == 1:
            relay.cut()  # the owner's node dies with this request in hand: no reply
            return
        await msg.respond(b"answered")

    await owner.nc.subscribe(subject, cb=serve)
    await flush_in_order(owner.nc, 5)
    reply = await asker.requester.request(subject, b"q", timeout=20, resend_on_reconnect=True)
    assert reply == b"answered" and copies == [b"q", b"q"]
    assert asker.nc.stats["reconnects"] == 0  # only the owner's connection dropped
    assert owner.nc.stats["reconnects"] == 1


async def test_a_request_not_safe_to_repeat_is_not_asked_again(pair: Pair) -> None:
    prefix, relay, asker, owner = pair.prefix, pair.relay, pair.asker, pair.owner
    subject = f"{prefix}.rpc.once"
    copies: list[bytes] = []
    back = asyncio.Event()

    async def serve(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg.data)
        relay.cut()

    async def on_notice(msg) -> None:  # type: ignore[no-untyped-def]
        back.set()

    await owner.nc.subscribe(subject, cb=serve)
    await flush_in_order(owner.nc, 5)
    await asker.nc.subscribe(f"{prefix}.control.peer.reconnected", cb=on_notice)
    await flush_in_order(asker.nc, 5)
    request = asyncio.ensure_future(asker.requester.request(subject, b"w", timeout=20))
    await asyncio.wait_for(back.wait(), timeout=15)  # the owner is back and said so
    await flush_in_order(asker.nc, 5)
    await flush_in_order(owner.nc, 5)  # a repeat, had one been sent, has reached the owner
    assert copies == [b"w"]
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


def test_calls_resent_are_those_a_repeat_cannot_harm() -> None:
    assert resendable("config.get", {})  # a read
    assert resendable("agent.wait", {"runId": "r"})  # a pure wait
    assert resendable("agent", {"message": "hi", "idempotencyKey": "k"})  # de-duplicated
    assert not resendable("agent", {"message": "hi"})  # no key: a repeat runs twice
    assert not resendable("agent", {"message": "hi", "idempotencyKey": ""})
    assert not resendable("chat.send", ["not", "a", "dict"])
    assert not resendable("config.patch", {"patch": {}, "idempotencyKey": "k"})  # no dedupe
    assert not resendable("no.such.method", {})


async def test_a_keyed_call_lost_with_its_owners_connection_is_asked_again(pair: Pair) -> None:
    """What http-api's `/v1` agent turn does: `agent` with an idempotency key, through
    `Bus.call`; the owner's connection dies with the call in hand."""
    prefix, relay, asker, owner = pair.prefix, pair.relay, pair.asker, pair.owner
    copies: list[bytes] = []

    async def serve(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg.data)
        if len(copies) == 1:
            relay.cut()
            return
        await msg.respond(b'{"result": {"runId": "r1", "status": "accepted"}}')

    await owner.nc.subscribe(f"{prefix}.rpc.agent", cb=serve)
    await flush_in_order(owner.nc, 5)
    result = await asker.call("agent", {"message": "hi", "idempotencyKey": "k1"}, timeout=20)
    assert result == {"runId": "r1", "status": "accepted"} and len(copies) == 2
