"""The nats-py internals `aisopod.compat.natspy` relies on exist, with the shapes it uses.

An upgrade of nats-py that renames or reshapes one of them fails here, naming it.
"""

from __future__ import annotations

import inspect
import uuid

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
        await nc.flush()
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
