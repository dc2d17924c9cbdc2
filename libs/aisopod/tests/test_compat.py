"""The nats-py internals `aisopod.compat.natspy` relies on exist, with the shapes it uses.

An upgrade of nats-py that renames or reshapes one of them fails here, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from urllib.parse import urlsplit

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig

from aisopod.compat import natspy
from aisopod.requester import Requester


def test_process_msg_keeps_the_signature_inbox_client_overrides() -> None:
    base = inspect.signature(getattr(NatsClient, natspy.PROCESS_MSG))
    ours = inspect.signature(natspy.InboxClient._process_msg)
    assert list(base.parameters) == list(ours.parameters)
    assert inspect.iscoroutinefunction(getattr(NatsClient, natspy.PROCESS_MSG))


async def test_client_subscription_and_kv_internals_exist(nats_url: str) -> None:
    nc = natspy.InboxClient()
    await nc.connect(nats_url)
    try:
        for name in natspy.CLIENT_INTERNALS:
            assert hasattr(nc, name), f"nats-py Client.{name} is gone"
        assert isinstance(natspy.max_pending_size(nc), int)
        assert inspect.iscoroutinefunction(nc._send_command)
        assert inspect.iscoroutinefunction(nc._flush_pending)

        sub = await nc.subscribe("compat." + uuid.uuid4().hex)
        for name in natspy.SUBSCRIPTION_INTERNALS:
            assert hasattr(sub, name), f"nats-py Subscription.{name} is gone"
        assert isinstance(natspy.subscription_sid(sub), int)
        await sub.unsubscribe()

        js = nc.jetstream()
        bucket = "compat_" + uuid.uuid4().hex[:8]
        kv = await js.create_key_value(KeyValueConfig(bucket=bucket))
        try:
            for name in natspy.KV_INTERNALS:
                assert hasattr(kv, name), f"nats-py KeyValue.{name} is gone"
            assert natspy.kv_bucket(kv) == bucket
            assert natspy.kv_jetstream(kv) is not None
            # A put publishes where kv_subject says: written through it, read back by get.
            await natspy.kv_jetstream(kv).publish(natspy.kv_subject(kv, "k"), b"v")
            assert (await kv.get("k")).value == b"v"
        finally:
            await js.delete_key_value(bucket)
    finally:
        await nc.close()


async def test_ping_now_is_answered_after_what_the_server_sent_before(nats_url: str) -> None:
    nc = natspy.InboxClient()
    await nc.connect(nats_url)
    publisher = natspy.InboxClient()
    await publisher.connect(nats_url)
    try:
        heard: list[bytes] = []

        async def on_message(msg: Msg) -> None:
            heard.append(msg.data)

        subject = "compat." + uuid.uuid4().hex
        await nc.subscribe(subject, cb=on_message)
        await natspy.flush_in_order(nc, 5)
        await publisher.publish(subject, b"before")
        await publisher.flush()  # the server has it (and queued it to `nc`) before the PING
        pong = natspy.ping_now(nc)
        assert pong is not None
        assert await pong is True
        # The callback's task was woken before the PONG's waiter: it has run already.
        assert heard == [b"before"]
    finally:
        await publisher.close()
        await nc.close()


async def test_flush_in_order_puts_what_was_queued_on_the_wire_before_its_ping(
    nats_url: str,
) -> None:
    """A SUB just made waits in nats-py's pending buffer for the flusher task, while
    `flush` writes its PING at once: the server could answer the PING before it has the
    SUB. Read off the bytes the client sends, through a proxy that keeps them."""
    parts = urlsplit(nats_url)
    sent = bytearray()

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if keep:
                    sent.extend(data)
                dst.write(data)
                await dst.drain()
        dst.close()

    pipes: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(parts.hostname, parts.port)
        pipes.add(asyncio.ensure_future(pipe(reader, up_writer, keep=True)))
        pipes.add(asyncio.ensure_future(pipe(up_reader, writer, keep=False)))

    proxy = await asyncio.start_server(accept, "127.0.0.1", 0)
    nc = natspy.InboxClient()
    await nc.connect(f"nats://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
    try:
        subject = "compat." + uuid.uuid4().hex
        await nc.subscribe(subject)
        await natspy.flush_in_order(nc, 5)
        # The PONG came back through the proxy, so every byte before the PING was kept.
        sub_at = bytes(sent).index(f"SUB {subject} ".encode())
        assert sub_at < bytes(sent).rindex(b"PING\r\n")
    finally:
        await nc.close()
        proxy.close()
        for task in pipes:
            task.cancel()


async def test_requests_travel_the_fast_path_end_to_end(nats_url: str) -> None:
    """send_command and the inbox dispatch together: a request gets its reply."""
    nc = natspy.InboxClient()
    await nc.connect(nats_url)
    try:
        subject = "compat.echo." + uuid.uuid4().hex

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe(subject, cb=echo)
        requester = Requester(nc)
        assert await requester.request(subject, b"ping", timeout=5) == b"ping"
        assert nc.receiver is requester
    finally:
        await nc.close()
