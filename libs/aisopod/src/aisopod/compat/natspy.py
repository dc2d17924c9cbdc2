"""nats-py internals we rely on (pinned `nats-py>=2.16,<2.17`), and why.

The request fast path (`aisopod.requester`) hands its commands to the client's own pending
buffer and flusher, and takes the replies of its inbox straight from the reader:

- `Client._process_msg(sid, subject, reply, data, headers)`: the reader's per-message
  dispatch, overridden by `InboxClient` below;
- `Subscription._id`: the sid that dispatch is keyed by;
- `Client._max_pending_size`: the reconnect buffer's limit (public only as an option);
- `Client._send_command(cmd)`, `Client._flush_queue`, `Client._flush_pending()`: append a
  raw protocol command and wake the flusher, as `publish` does.
- `Client._pending_data_size`, `Client._transport`: a reply with nothing queued before it
  is written to the socket at once (`write_now`), not through the flusher task: at low
  concurrency the hand-over to that task is a good part of a round trip's latency.
- `Client._pending` too: a request (`write_soon`) joins the pending buffer, which is
  written out in one socket write once the loop has run the callbacks that are ready, not
  by the flusher task: the requests a task sends together (a `gather` of KV writes) leave
  in one write and wake nats-server once.

- `Client._pending` (with `_pending_data_size`): `flush_in_order` writes it out before
  flush's PING, which nats-py writes straight to the socket, ahead of it.
- `Client._pongs`: the futures the reader resolves, in order, as PONGs arrive; `ping_now`
  appends one and writes its PING at once (ws-gateway orders a handshake that asked
  nothing over NATS after the messages sent to it before, credentials.py).

A responder on the hot path (ratelimit's `ratelimit.edge`) answers from the reader too:
`InboxClient.responders` maps a subscription's sid to a synchronous function from the
request to its reply, written with `write_now` (docs/ratelimit.md, The edge check's cost).

Key-value buckets: the stream behind a bucket is read with our own consumers (snapshots of
every key, the dedupe write without an ack wait), which needs three things `KeyValue`
keeps private: `_name` (the bucket), `_js` (its JetStream context) and `_pre` (the subject
prefix of its keys, `$KV.<bucket>.` unless a JetStream domain changes it); a key's value
is read on the lean path (`kvview.get_json`) with two more, `_stream` (the stream's name)
and `_direct` (whether nats-py would read with a direct get), and nats-py's key check
(`kv_key_valid`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.kv import _is_key_valid as _nats_key_valid

PROCESS_MSG = "_process_msg"
CLIENT_INTERNALS = (
    "_max_pending_size",
    "_send_command",
    "_flush_queue",
    "_flush_pending",
    "_pending",
    "_pending_data_size",
    "_transport",
    "_pongs",
)
PING = b"PING\r\n"
SUBSCRIPTION_INTERNALS = ("_id",)
KV_INTERNALS = ("_name", "_js", "_pre", "_stream", "_direct")


class InboxReceiver(Protocol):
    """What `InboxClient` hands the messages of one subscription to (the Requester)."""

    sid: int

    def resolve(self, subject: bytes, data: bytes, headers: bytes | None) -> None: ...


DirectResponder = Callable[[bytes, bytes, bytes | None], bytes | None]
"""(reply subject, data, headers) → the reply's payload, or None when the responder sends
its answer itself later (it needed to wait for something)."""


class InboxClient(NatsClient):
    """nats-py's client, handing the messages of one subscription to `receiver` directly
    from the reader (no subscription queue, task or callback in between), and those of
    the subscriptions in `responders` to their synchronous responder."""

    receiver: InboxReceiver | None = None
    responders: dict[int, DirectResponder]
    write_scheduled: bool
    """A `write_soon` callback is pending on the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.responders = {}
        self.write_scheduled = False

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        receiver = self.receiver
        if receiver is not None and sid == receiver.sid:
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            receiver.resolve(subject, data, headers)
            return
        responder = self.responders.get(sid) if self.responders else None
        if responder is not None and reply:
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            answer = responder(reply, data, headers or None)
            if answer is not None:
                await publish_now(self, reply, answer)
            return
        await super()._process_msg(sid, subject, reply, data, headers)


def write_now(nc: NatsClient, cmd: bytes) -> bool:
    """Write a whole protocol command to the socket now when nothing is queued before it
    (so commands keep their order); False when it must go through the pending buffer
    (something is queued, or the connection is not up)."""
    transport = nc._transport
    if nc._pending_data_size or transport is None or not nc.is_connected:
        return False
    transport.write(cmd)
    return True


def write_soon(nc: NatsClient, cmd: bytes) -> bool:
    """Queue a whole protocol command behind what is pending and have the buffer written
    by a loop callback (one per loop pass), not by the flusher task: commands queued in the
    same pass (the requests of a `gather`) go out in one socket write, in order, waking
    nats-server once instead of once per command. False when it cannot (a plain nats-py
    client, or the connection is not up): queue it with `send_command` then."""
    transport = nc._transport
    if not isinstance(nc, InboxClient) or transport is None or not nc.is_connected:
        return False
    nc._pending.append(cmd)
    nc._pending_data_size += len(cmd)
    if not nc.write_scheduled:
        nc.write_scheduled = True
        asyncio.get_running_loop().call_soon(_write_pending, nc)
    return True


def _write_pending(nc: InboxClient) -> None:
    """What the flusher task does, without its task hop (or its drain: `write_now` has
    none either). What is left while the connection is down waits for nats-py's reconnect,
    which writes the pending buffer first."""
    nc.write_scheduled = False
    transport = nc._transport
    if nc._pending_data_size and transport is not None and nc.is_connected:
        transport.writelines(nc._pending[:])
        nc._pending = []
        nc._pending_data_size = 0


async def publish_now(nc: NatsClient, subject: bytes, payload: bytes) -> None:
    """Publish `payload` (no headers) on `subject`, written at once when possible."""
    cmd = b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(payload)
    if not write_now(nc, cmd):
        await send_command(nc, cmd)


def ping_now(nc: NatsClient) -> asyncio.Future[bool] | None:
    """A PING written to the socket now, and the future nats-py's reader resolves when its
    PONG is read: by then every message the server sent this connection before the PONG
    has been read (and its subscription's callback woken). A message another connection
    published counts only if the server had its PUB before this PING: that connection's
    `flush_in_order` proves it, a bare `flush` does not (its PING overtakes the PUB). None
    when it cannot be written at once (`write_now`). A connection lost first never resolves
    it: wait for it with a timeout that does not cancel it (the reader would fail setting a
    cancelled future)."""
    transport = nc._transport
    if nc._pending_data_size or transport is None or not nc.is_connected:
        return None
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    nc._pongs.append(future)  # nats-py's own PINGs are appended as written, too: in order
    transport.write(PING)
    return future


async def flush_in_order(nc: NatsClient, timeout: float) -> None:
    """`nc.flush`, with what was queued before it on the wire first. nats-py 2.16 writes
    flush's PING straight to the socket, ahead of commands still in its pending buffer (a
    SUB or PUB just made, until the flusher task runs), so its PONG alone does not prove
    the server has them: a peer told "subscribed" could still meet no responders (seen
    under load). The buffer goes out first here, as the flusher would write it."""
    transport = nc._transport
    if nc._pending_data_size and transport is not None and nc.is_connected:
        transport.writelines(nc._pending[:])
        nc._pending = []
        nc._pending_data_size = 0
    await nc.flush(timeout=timeout)  # type: ignore[arg-type]  # typed int, used as seconds


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


def kv_key_valid(key: str) -> bool:
    """nats-py's check of a key (`KeyValue.get` raises InvalidKeyError when it fails)."""
    return _nats_key_valid(key)


def kv_stream(kv: KeyValue) -> str:
    return kv._stream


def kv_direct(kv: KeyValue) -> bool:
    return kv._direct


def kv_subject(kv: KeyValue, key: str) -> str:
    """The subject a put of `key` publishes to."""
    return f"{kv._pre}{key}"


async def subscribe_direct(
    nc: NatsClient, subject: str, queue: str, responder: DirectResponder
) -> Subscription:
    """Serve `subject` (in queue group `queue`) with a synchronous responder: from the
    reader on an `InboxClient`, through an ordinary subscription callback otherwise."""

    async def fallback(msg: Any) -> None:  # a plain nats-py client (tests, tools)
        answer = responder(msg.reply.encode(), msg.data, None)
        if answer is not None:
            await nc.publish(msg.reply, answer)

    sub = await nc.subscribe(subject, queue=queue, cb=fallback)
    if isinstance(nc, InboxClient):
        nc.responders[subscription_sid(sub)] = responder
    return sub
