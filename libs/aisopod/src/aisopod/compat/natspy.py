"""nats-py internals we rely on (pinned `nats-py>=2.16,<2.17`), and why.

The request fast path (`aisopod.requester`) hands its commands to the client's own pending
buffer and flusher, and takes the replies of its inbox straight from the reader:

- `Client._process_msg(sid, subject, reply, data, headers)`: the reader's per-message
  dispatch, overridden by `InboxClient` below;
- `Subscription._id`: the sid that dispatch is keyed by;
- `Client._max_pending_size`: the reconnect buffer's limit (public only as an option);
- `Client._send_command(cmd)`, `Client._flush_queue`, `Client._flush_pending()`: append a
  raw protocol command and wake the flusher, as `publish` does.

Key-value buckets: the stream behind a bucket is read with our own consumers (snapshots of
every key, the dedupe write without an ack wait), which needs three things `KeyValue`
keeps private: `_name` (the bucket), `_js` (its JetStream context) and `_pre` (the subject
prefix of its keys, `$KV.<bucket>.` unless a JetStream domain changes it).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

PROCESS_MSG = "_process_msg"
CLIENT_INTERNALS = ("_max_pending_size", "_send_command", "_flush_queue", "_flush_pending")
SUBSCRIPTION_INTERNALS = ("_id",)
KV_INTERNALS = ("_name", "_js", "_pre")


class InboxReceiver(Protocol):
    """What `InboxClient` hands the messages of one subscription to (the Requester)."""

    sid: int

    def resolve(self, subject: bytes, data: bytes, headers: bytes | None) -> None: ...


class InboxClient(NatsClient):
    """nats-py's client, handing the messages of one subscription to `receiver` directly
    from the reader (no subscription queue, task or callback in between)."""

    receiver: InboxReceiver | None = None

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        receiver = self.receiver
        if receiver is not None and sid == receiver.sid:
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            receiver.resolve(subject, data, headers)
            return
        await super()._process_msg(sid, subject, reply, data, headers)


def subscription_sid(sub: Subscription) -> int:
    return sub._id


def max_pending_size(nc: NatsClient) -> int:
    return nc._max_pending_size


async def send_command(nc: NatsClient, cmd: bytes) -> None:
    """Queue a raw protocol command and wake the flusher if nothing else will."""
    await nc._send_command(cmd)
    queue: asyncio.Queue[asyncio.Future[Any]] | None = nc._flush_queue
    if queue is not None and queue.empty():
        await nc._flush_pending()


def kv_bucket(kv: KeyValue) -> str:
    return kv._name


def kv_jetstream(kv: KeyValue) -> JetStreamContext:
    return kv._js


def kv_subject(kv: KeyValue, key: str) -> str:
    """The subject a put of `key` publishes to."""
    return f"{kv._pre}{key}"
