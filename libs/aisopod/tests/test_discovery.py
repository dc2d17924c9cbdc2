"""Discovery replies: another deployment's services on the same NATS account are not ours;
a gather ends when cancelled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from aisopod.bus import Bus
from aisopod.discovery import _instance, scatter
from aisopod.settings import ServiceSettings


def test_only_this_deployments_instances_count() -> None:
    ours = {"name": "auth", "id": "m1", "metadata": {"instance": "auth-1", "prefix": "aisopod"}}
    theirs = {"name": "auth", "id": "m2", "metadata": {"instance": "auth-1", "prefix": "other"}}
    unlabeled = {"name": "auth", "id": "m3", "metadata": {}}  # a service of an older release
    found = _instance(ours, "aisopod")
    assert found is not None and found.key == ("auth", "auth-1")
    assert _instance(theirs, "aisopod") is None
    assert _instance(unlabeled, "aisopod") is not None
    assert _instance({"name": "auth"}, "aisopod") is None


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    prefix = "t" + uuid.uuid4().hex[:8]
    settings = ServiceSettings(service="test", nats_url=nats_url, subject_prefix=prefix)
    bus = await Bus.connect(settings)
    yield bus
    await bus.close()


async def test_a_cancelled_gather_always_ends_even_while_replies_arrive(bus: Bus) -> None:
    """A loop that gathers (http-api's /status discovery) is stopped by cancelling it; a
    cancellation that lands together with a reply must not be lost, or the stop waits for
    ever (it held an http-api that could not bind its port: alive, never ready)."""
    subject = bus.subjects.control("stats-test")

    async def answer_many(msg: Msg) -> None:
        for n in range(400):  # a stream of replies, so a cancellation meets one arriving
            await bus.nc.publish(msg.reply, b'{"n": %d}' % n)

    responder = await bus.nc.subscribe(subject, cb=answer_many)
    try:
        for attempt in range(60):
            # Gathers far longer than the wait below unless the cancellation ends it.
            task = asyncio.create_task(scatter(bus, subject, cap=600.0, quiet=600.0))
            # Let it gather a few replies (how many varies), then cancel it.
            for _ in range(5 + attempt % 7):
                await asyncio.sleep(0)
            await asyncio.sleep(0.001 * (attempt % 5))
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=60.0)
            assert done, f"attempt {attempt}: the cancelled gather still runs"
            assert task.cancelled()
    finally:
        await responder.unsubscribe()
