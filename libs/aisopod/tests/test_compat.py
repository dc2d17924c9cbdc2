"""The nats-py internals `aisopod.compat.natspy` relies on exist, with the shapes it uses.

An upgrade of nats-py that renames or reshapes one of them fails here, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import uuid
from collections.abc import Callable
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


class Proxy:
    """A TCP proxy in front of nats-server for one client: keeps the bytes the client sends
    (`sent`), and can hold what the server sends it (`hold`) to hand it on in one write."""

    def __init__(self, nats_url: str) -> None:
        parts = urlsplit(nats_url)
        self.host, self.port = parts.hostname, parts.port
        self.sent = bytearray()
        self.held = bytearray()
        self.holding = False
        self.url = ""
        self._client: asyncio.StreamWriter | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"nats://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._pipes:
            task.cancel()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        """What was held goes to the client in one write (read there in one read)."""
        assert self._client is not None
        self.holding = False
        self._client.write(bytes(self.held))
        self.held.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._client = writer
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self._pipes.add(asyncio.ensure_future(self._pipe(reader, up_writer, up=True)))
        self._pipes.add(asyncio.ensure_future(self._pipe(up_reader, writer, up=False)))

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, up: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if up:
                    self.sent.extend(data)
                elif self.holding:
                    self.held.extend(data)
                    continue
                dst.write(data)
                await dst.drain()
        dst.close()


async def until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {within_s}s"
        await asyncio.sleep(0.01)


async def test_ping_now_is_answered_after_what_the_server_sent_before(nats_url: str) -> None:
    """The future `ping_now` returns resolves only once the messages the server sent before
    its PONG are read and their callbacks woken (one that does not await has run). What the
    server sends `nc` is held in a proxy until the PONG is there, then handed on in one
    write: the message is read in the same read as the PONG, just before it, not earlier."""
    async with Proxy(nats_url) as proxy:
        nc = natspy.InboxClient()
        await nc.connect(proxy.url)
        publisher = natspy.InboxClient()
        await publisher.connect(nats_url)
        try:
            heard: list[bytes] = []

            async def on_message(msg: Msg) -> None:
                heard.append(msg.data)

            subject = "compat." + uuid.uuid4().hex
            await nc.subscribe(subject, cb=on_message)
            await natspy.flush_in_order(nc, 5)
            proxy.hold()
            await publisher.publish(subject, b"before")
            # Not `publisher.flush()`: its PING goes out ahead of the PUB, so its PONG does
            # not prove the server has queued the message to `nc` before `nc`'s PING.
            await natspy.flush_in_order(publisher, 5)
            pong = natspy.ping_now(nc)
            assert pong is not None
            await until(lambda: b"PONG\r\n" in proxy.held)
            held = bytes(proxy.held)
            assert b"MSG " in held[: held.index(b"PONG\r\n")]  # the server's part: in order
            assert heard == []
            assert not pong.done()  # its PONG is in the proxy, not read
            proxy.release()
            # Awaited directly, no deadline (the PONG is on its way): a waiter one loop step
            # further away (`asyncio.wait`) would hide a callback woken one step late.
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
    async with Proxy(nats_url) as proxy:
        nc = natspy.InboxClient()
        await nc.connect(proxy.url)
        try:
            subject = "compat." + uuid.uuid4().hex
            await nc.subscribe(subject)
            await natspy.flush_in_order(nc, 5)
            # The PONG came back through the proxy, so every byte before the PING was kept.
            sub_at = bytes(proxy.sent).index(f"SUB {subject} ".encode())
            assert sub_at < bytes(proxy.sent).rindex(b"PING\r\n")
        finally:
            await nc.close()


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
