"""Complete reads of JetStream state: every message of a subject, every live KV entry.

nats-py's KV watcher can report the end of its initial snapshot before the snapshot is in
(seen under load: a listing came back empty). These reads use a short-lived pull consumer
instead, whose creation says exactly how many messages match, so a read ends when they are
in.

On a NATS cluster the consumer lives on one server; until its interest has crossed the
route to the client's server, a fetch gets "no responders" (503). `fetch` retries that
(jsretry.py): nothing was delivered, so asking again is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from aisopod.compat.natspy import kv_bucket, kv_jetstream, kv_subject
from aisopod.errors import Unavailable
from aisopod.jsretry import DEFAULT_RETRY_S, retry_transient

_FETCH_BATCH = 512
_STOPPING_BATCH = 32
"""Smaller batches when a read may stop early: it reads at most this many past its end."""
# Messages a fetch asks for are there already (counted at creation): a fetch this slow
# means the consumer's node is gone.
_FETCH_TIMEOUT_S = 3.0
log = logging.getLogger("aisopod.jsread")
KV_OPERATION = "KV-Operation"


async def consume_all(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    deliver: DeliverPolicy = DeliverPolicy.ALL,
    limit: int | None = None,
    start_seq: int | None = None,
    start_time: datetime | None = None,
    stop: Callable[[Msg], bool] | None = None,
    headers_only: bool = False,
) -> list[Msg]:
    """Every message of `stream` matching `subject` (the last `limit` when given; from
    stream sequence `start_seq`, or the first message stored at or after `start_time`,
    on when given; up to the first batch whose last message `stop` accepts, when given:
    the messages after the one it would first accept may come too; without their data
    when `headers_only`).

    A short-lived pull consumer: its creation reports exactly how many messages match,
    so the read ends when they are in — no end-of-data race as with a push watcher.
    The consumer lives on one NATS node: when that node dies mid-read, the fetch only
    times out, and the read starts over with a new consumer (within the retry bound).
    """
    deadline = time.monotonic() + _retry_s(js)
    while True:
        try:
            return await _consume_once(
                js, stream, subject, deliver, limit, start_seq, start_time, stop, headers_only
            )
        except nats.errors.TimeoutError:
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"reading {stream} timed out (a NATS node is down); retry shortly",
                    code="JETSTREAM_UNAVAILABLE",
                ) from None
            log.info("reading %s: the consumer went silent; reading again", stream)


async def _consume_once(
    js: JetStreamContext,
    stream: str,
    subject: str,
    deliver: DeliverPolicy,
    limit: int | None,
    start_seq: int | None,
    start_time: datetime | None = None,
    stop: Callable[[Msg], bool] | None = None,
    headers_only: bool = False,
) -> list[Msg]:
    if start_seq:
        deliver = DeliverPolicy.BY_START_SEQUENCE
    elif start_time is not None:
        deliver = DeliverPolicy.BY_START_TIME
    config = ConsumerConfig(
        name=uuid.uuid4().hex,
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        deliver_policy=deliver,
        opt_start_seq=start_seq,
        opt_start_time=start_time if not start_seq else None,
        mem_storage=True,
        inactive_threshold=10.0,
        num_replicas=1,
        headers_only=headers_only or None,
    )
    info = await js.add_consumer(stream, config=config)
    pending = info.num_pending
    kept: deque[Msg] = deque(maxlen=limit)
    if not pending:
        _discard(js, stream, info.name)
        return []
    sub = await js.pull_subscribe_bind(consumer=info.name, stream=stream)
    try:
        while pending > 0:
            size = _FETCH_BATCH if stop is None else _STOPPING_BATCH
            batch = await fetch(
                sub, min(pending, size), timeout=_FETCH_TIMEOUT_S, retry_s=_retry_s(js)
            )
            kept.extend(batch)
            pending = batch[-1].metadata.num_pending
            if stop is not None and stop(batch[-1]):
                break
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        _discard(js, stream, info.name)
    return list(kept)


async def fetch(
    sub: JetStreamContext.PullSubscription,
    batch: int,
    *,
    timeout: float,
    retry_s: float = DEFAULT_RETRY_S,
) -> list[Msg]:
    """`sub.fetch`, retried while the consumer is not yet (or no longer) reachable."""
    return await retry_transient(
        "fetching from a consumer",
        lambda: sub.fetch(batch=batch, timeout=timeout),
        retry_s=retry_s,
        timeouts=False,
    )


def _retry_s(js: JetStreamContext) -> float:
    return float(getattr(js, "retry_s", DEFAULT_RETRY_S))


_cleanups: set[asyncio.Task[None]] = set()


def _discard(js: JetStreamContext, stream: str, consumer: str) -> None:
    """Delete a used consumer in the background (its inactivity threshold is the backstop):
    the reader does not wait for the round trip."""

    async def delete() -> None:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, consumer)

    task = asyncio.ensure_future(delete())
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


async def snapshot(kv: KeyValue, pattern: str = ">") -> list[KeyValue.Entry]:
    """Every live entry whose key matches `pattern` (one consumer, last value per key)."""
    bucket = kv_bucket(kv)
    prefix = kv_subject(kv, "")
    out = []
    for msg in await _last_per_key(kv, pattern, headers_only=False):
        meta = msg.metadata
        entry = KeyValue.Entry(
            bucket=bucket,
            key=msg.subject.removeprefix(prefix),
            value=msg.data,
            revision=meta.sequence.stream,
            delta=meta.num_pending,
            # nats-py annotates `created` as int but fills it with this datetime itself.
            created=cast(Any, meta.timestamp),
            operation=None,
        )
        out.append(entry)
    return out


async def live_keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """The keys of the live entries matching `pattern`, without their values. Not nats-py's
    `KeyValue.keys()`: its push watcher can signal the end before the entries the server
    already sent (its consumer info reads none pending, none counted received yet), and
    then reports no keys at all (seen in a test under load)."""
    prefix = kv_subject(kv, "")
    return [m.subject.removeprefix(prefix) for m in await _last_per_key(kv, pattern, True)]


async def _last_per_key(kv: KeyValue, pattern: str, headers_only: bool) -> list[Msg]:
    """The last message of every key matching `pattern` that is not a delete or purge."""
    messages = await consume_all(
        kv_jetstream(kv),
        f"KV_{kv_bucket(kv)}",
        kv_subject(kv, "") + pattern,
        deliver=DeliverPolicy.LAST_PER_SUBJECT,
        headers_only=headers_only,
    )
    return [
        m for m in messages if not (m.headers and m.headers.get(KV_OPERATION) in ("DEL", "PURGE"))
    ]
