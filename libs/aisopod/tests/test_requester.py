"""The lean request/reply client (requester.py) against a real nats-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable

import nats
import pytest
from nats import errors
from nats.aio.client import Client as PlainClient

from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order
from aisopod.errors import Unavailable
from aisopod.requester import Client, Requester, encode_headers
from aisopod.settings import ServiceSettings
from tests.support.natsrelay import Relay


async def _until_received(copies: list[bytes], within_s: float = 30.0) -> None:
    """Poll until the subscriber saw a copy; fail (not hang) when none arrives in time."""
    deadline = time.monotonic() + within_s
    while not copies:
        assert time.monotonic() < deadline, f"no copy received within {within_s}s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def bus(nats_url: str):
    prefix = "t" + uuid.uuid4().hex[:8]
    bus = await Bus.connect(
        ServiceSettings(service="test", nats_url=nats_url, subject_prefix=prefix)
    )
    yield bus
    await bus.close()


async def _echo(nc: PlainClient, subject: str, seen: list[dict[str, str]] | None = None) -> None:
    async def reply(msg) -> None:  # type: ignore[no-untyped-def]
        if seen is not None:
            seen.append(dict(msg.headers or {}))
        await nc.publish(msg.reply, b"re:" + msg.data)

    await nc.subscribe(subject, cb=reply)
    # Subscribed before the caller asks: nats-py's own flush can PING ahead of the SUB.
    await flush_in_order(nc, 5)


def test_encode_headers_follows_nats_rules() -> None:
    assert encode_headers(None) is None
    assert encode_headers({}) is None
    block = encode_headers({"A-Key": "  x\r\ny  ", " ": "skipped"})
    assert block == b"NATS/1.0\r\nA-Key: x  y\r\n\r\n"
    with pytest.raises(errors.BadHeaderError):
        encode_headers({"bad key": "v"})
    # Keys are checked once and remembered: the same answers the second time.
    assert encode_headers({"A-Key": "  x\r\ny  ", " ": "skipped"}) == block
    with pytest.raises(errors.BadHeaderError):
        encode_headers({"bad key": "v"})
    assert encode_headers({" A-Key ": "z"}) == b"NATS/1.0\r\nA-Key: z\r\n\r\n"


async def test_replies_reach_their_own_request(bus: Bus) -> None:
    assert isinstance(bus.nc, Client)
    seen: list[dict[str, str]] = []
    await _echo(bus.nc, "echo.one", seen)
    headers = encode_headers({"Aisopod-Principal": "op", "Aisopod-Device-Id": "d\r\nX: y"})
    replies = await asyncio.gather(
        *(
            bus.requester.request("echo.one", str(n).encode(), timeout=5, headers=headers)
            for n in range(200)
        )
    )
    assert replies == [b"re:" + str(n).encode() for n in range(200)]
    assert seen[0] == {"Aisopod-Principal": "op", "Aisopod-Device-Id": "d  X: y"}
    assert not bus.requester._futures  # nothing left behind
    assert bus.nc.stats["in_msgs"] >= 200


async def test_no_responders_and_timeout(bus: Bus) -> None:
    with pytest.raises(errors.NoRespondersError):
        await bus.requester.request("nobody.home", b"{}", timeout=5)
    await bus.nc.subscribe("silent.one", cb=_ignore)
    await bus.nc.flush()
    with pytest.raises(errors.TimeoutError):
        await bus.requester.request("silent.one", b"{}", timeout=0.2)
    assert not bus.requester._futures
    # A timeout well past the bus's no-responders grace (5 s): with them equal, the last
    # repeat's "no responders" could land after the deadline on a loaded machine (NO_REPLY).
    with pytest.raises(Unavailable) as caught:
        await bus.request("nobody.home", {}, timeout=30)
    assert caught.value.detail_code == "NO_RESPONDERS"
    with pytest.raises(Unavailable) as caught:
        await bus.request("silent.one", {}, timeout=0.2)
    assert caught.value.detail_code == "NO_REPLY"


async def test_a_deadline_inside_the_grace_still_reports_no_responders(nats_url: str) -> None:
    """Every "no responders" takes 0.3 s to come back (a slow link); the caller's 0.8 s is
    inside the 5 s grace. A repeat sent at 0.66 s would still be waiting at 0.8 s and the
    caller would read "did not answer in time" (NO_REPLY) about a subject nobody serves."""
    relay = Relay(nats_url, delay_s=0.3)
    slow = await Bus.connect(
        ServiceSettings(service="test", nats_url=await relay.start(), subject_prefix="slow")
    )
    try:
        with pytest.raises(Unavailable) as caught:
            await slow.request("nobody.home", {}, timeout=0.8)
        assert caught.value.detail_code == "NO_RESPONDERS"
        assert not slow.requester._futures
    finally:
        await slow.close()
        await relay.close()


async def test_cancelled_request_leaves_nothing(bus: Bus) -> None:
    await bus.nc.subscribe("silent.two", cb=_ignore)
    await bus.nc.flush()
    task = asyncio.ensure_future(bus.requester.request("silent.two", b"{}", timeout=30))
    while not bus.requester._futures:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not bus.requester._futures


async def test_bad_subject_and_closed(bus: Bus) -> None:
    with pytest.raises(errors.BadSubjectError):
        await bus.requester.request("a b", b"{}", timeout=1)
    with pytest.raises(errors.BadSubjectError):
        await bus.requester.request("a\r\nPUB x 1", b"{}", timeout=1)
    await bus.nc.close()
    with pytest.raises(errors.ConnectionClosedError):
        await bus.requester.request("echo.x", b"{}", timeout=1)


async def test_requests_sent_together_leave_in_one_socket_write(
    bus: Bus, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requests of one loop pass (a gather) are written once that pass has run, in
    one socket write and in the order sent, behind what nats-py had queued before them;
    the replies all arrive."""
    responder = await nats.connect(nats_url)  # its replies are not this connection's writes
    try:
        await _echo(responder, "echo.batch")
        assert await bus.requester.request("echo.batch", b"warm", timeout=5) == b"re:warm"
        transport = bus.nc._transport
        writes: list[bytes] = []
        real_write, real_writelines = transport.write, transport.writelines

        def write(data: bytes) -> None:
            writes.append(bytes(data))
            real_write(data)

        def writelines(lines: list[bytes]) -> None:
            writes.append(b"".join(lines))
            real_writelines(lines)

        monkeypatch.setattr(transport, "write", write)
        monkeypatch.setattr(transport, "writelines", writelines)

        def requests() -> list[Awaitable[bytes]]:
            return [bus.requester.request("echo.batch", b"%d" % n, timeout=5) for n in range(5)]

        def written_once() -> bytes:
            ours = [w for w in writes if b"echo.batch" in w]
            assert len(ours) == 1, writes
            positions = [ours[0].index(b"\r\n%d\r\n" % n) for n in range(5)]
            assert positions == sorted(positions)
            assert not bus.nc._pending and not bus.nc.pending_data_size
            writes.clear()
            return ours[0]

        assert await asyncio.gather(*requests()) == [b"re:%d" % n for n in range(5)]
        written_once()
        # nats-py's own publish, in the same pass and before them: its pending buffer.
        _, *replies = await asyncio.gather(
            bus.nc.publish("echo.queued-before", b"first"), *requests()
        )
        assert replies == [b"re:%d" % n for n in range(5)]
        sent = written_once()
        assert sent.index(b"echo.queued-before") < sent.index(b"echo.batch")
    finally:
        await responder.close()


async def test_plain_client_gets_replies_through_the_subscription(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        await _echo(nc, "echo.plain")
        requester = Requester(nc)
        assert await requester.request("echo.plain", b"hi", timeout=5) == b"re:hi"
        with pytest.raises(errors.NoRespondersError):
            await requester.request("nobody.plain", b"{}", timeout=5)
    finally:
        await nc.close()


async def _ignore(msg) -> None:  # type: ignore[no-untyped-def]
    return None


async def test_a_resendable_request_is_sent_again_on_resend(bus: Bus) -> None:
    """What a reconnect does: a read whose first copy was lost (here: ignored) is answered
    through its second; a request not marked resendable is not sent twice."""
    subject = f"resend.{uuid.uuid4().hex}"
    copies: list[bytes] = []

    async def second_copy_only(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg.data)
        if len(copies) == 2:
            await msg.respond(b"answered")

    await bus.nc.subscribe(subject, cb=second_copy_only)
    await bus.nc.flush()
    reply = asyncio.ensure_future(
        bus.requester.request(subject, b"q", timeout=5, resend_on_reconnect=True)
    )
    await _until_received(copies)
    await bus.requester.resend()
    assert await reply == b"answered" and copies == [b"q", b"q"]

    copies.clear()
    plain = asyncio.ensure_future(bus.requester.request(subject, b"w", timeout=0.5))
    await _until_received(copies)
    await bus.requester.resend()
    with pytest.raises(errors.TimeoutError):
        await plain
    assert copies == [b"w"]


async def test_a_resent_copy_that_finds_the_first_in_flight_is_not_the_answer(bus: Bus) -> None:
    subject = f"inflight.{uuid.uuid4().hex}"
    first: list = []

    async def owner(msg) -> None:  # type: ignore[no-untyped-def]
        if not first:
            first.append(msg)  # still running: answered after the repeat's error
            return
        await msg.respond(b'{"error": {"code": -32009, "data": {"code": "IN_FLIGHT"}}}')
        await first[0].respond(b'{"result": "done"}')

    await bus.nc.subscribe(subject, cb=owner)
    await bus.nc.flush()
    reply = asyncio.ensure_future(
        bus.requester.request(subject, b"q", timeout=5, resend_on_reconnect=True)
    )
    while not first:
        await asyncio.sleep(0.01)
    await bus.requester.resend()
    assert await reply == b'{"result": "done"}'


async def test_resent_copies_ask_again_until_one_is_answered(bus: Bus) -> None:
    """The first copy's reply was lost with its connection; the resent copy finds it in
    flight (its result not stored yet); a later copy gets the stored result."""
    subject = f"inflight.{uuid.uuid4().hex}"
    copies: list = []

    async def owner(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg)
        if len(copies) == 1:
            return  # its reply never arrives
        if len(copies) == 2:
            await msg.respond(b'{"error": {"code": -32009, "data": {"code": "IN_FLIGHT"}}}')
            return
        await msg.respond(b'{"result": "stored"}')

    await bus.nc.subscribe(subject, cb=owner)
    await bus.nc.flush()
    reply = asyncio.ensure_future(
        bus.requester.request(subject, b"q", timeout=10, resend_on_reconnect=True)
    )
    await _until_received(copies)
    await bus.requester.resend()
    assert await reply == b'{"result": "stored"}'
    assert len(copies) == 3


async def test_a_resent_copy_meeting_no_responders_waits_for_the_owner(
    bus: Bus, nats_url: str
) -> None:
    """The owner's node died with the first copy in hand, and our own reconnect resends
    before the owner is back: "no responders", long after the first copy went out. The
    grace runs from that answer, not from the send; the owner, back, finds the request
    still running (IN_FLIGHT, so ask again) and then answers from its stored result."""
    subject = f"orphan.{uuid.uuid4().hex}"
    copies: list[bytes] = []

    async def serve(msg) -> None:  # type: ignore[no-untyped-def]
        copies.append(msg.data)
        if len(copies) == 1:
            return  # its reply dies with the owner's node
        if len(copies) == 2:
            await msg.respond(b'{"error": {"code": -32009, "data": {"code": "IN_FLIGHT"}}}')
            return
        await msg.respond(b'{"result": "stored"}')

    owner = await nats.connect(nats_url)
    try:
        sub = await owner.subscribe(subject, cb=serve)
        await flush_in_order(owner, 5)
        # Room for a loaded event loop: the owner is back 0.05 s into a 2 s grace.
        grace_s = 2.0
        reply = asyncio.ensure_future(
            bus.requester.request(
                subject,
                b"q",
                timeout=10,
                no_responders_grace_s=grace_s,
                resend_on_reconnect=True,
            )
        )
        await _until_received(copies)
        await sub.unsubscribe()  # the owner's node dies
        await flush_in_order(owner, 5)
        await asyncio.sleep(grace_s + 0.2)  # the first copy is now older than the grace
        await bus.requester.resend()  # our reconnect's resend meets no responders
        await asyncio.sleep(0.05)
        await owner.subscribe(subject, cb=serve)  # the owner is back on another node
        await flush_in_order(owner, 5)
        assert await reply == b'{"result": "stored"}'
        assert copies == [b"q", b"q", b"q"]
        assert not bus.requester._futures and not bus.requester._resent
    finally:
        await owner.close()
