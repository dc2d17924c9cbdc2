"""Complete reads of JetStream state: every message of a subject, every live KV entry.

nats-py's KV watcher can report the end of its initial snapshot before the snapshot is in
(seen under load: a listing came back empty). These reads use a short-lived pull consumer
instead, whose creation says exactly how many messages match, so a read ends when they are
in.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from typing import Any, cast

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from aisopod.compat.natspy import kv_bucket, kv_jetstream, kv_subject

_FETCH_BATCH = 512
KV_OPERATION = "KV-Operation"


async def consume_all(
    js: JetStreamContext,
    stream: str,
    subject: str,
    *,
    deliver: DeliverPolicy = DeliverPolicy.ALL,
    limit: int | None = None,
    start_seq: int | None = None,
) -> list[Msg]:
    """Every message of `stream` matching `subject` (the last `limit` when given; from
    stream sequence `start_seq` on when given).

    A short-lived pull consumer: its creation reports exactly how many messages match,
    so the read ends when they are in — no end-of-data race as with a push watcher.
    """
    config = ConsumerConfig(
        name=uuid.uuid4().hex,
        filter_subject=subject,
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start_seq else deliver,
        opt_start_seq=start_seq,
        mem_storage=True,
        inactive_threshold=10.0,
        num_replicas=1,
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
            batch = await sub.fetch(batch=min(pending, _FETCH_BATCH), timeout=5.0)
            kept.extend(batch)
            pending = batch[-1].metadata.num_pending
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        _discard(js, stream, info.name)
    return list(kept)


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
    messages = await consume_all(
        kv_jetstream(kv), f"KV_{bucket}", prefix + pattern, deliver=DeliverPolicy.LAST_PER_SUBJECT
    )
    out = []
    for msg in messages:
        if msg.headers and msg.headers.get(KV_OPERATION) in ("DEL", "PURGE"):
            continue
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
