"""Reading and awaiting JetStream state: KV key escaping, stream reads, snapshots, waits.

KV keys allow only `[-/_=.A-Za-z0-9]`, and `.` separates tokens for watch patterns, so
free-form values (session keys such as `agent:main:main`) are escaped with `kv_token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from aisopod import codec

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_FETCH_BATCH = 512
KV_OPERATION = "KV-Operation"


def kv_token(value: str) -> str:
    """One KV key token for a free-form value: anything outside `[A-Za-z0-9_-]` → `=XX`."""
    return _UNSAFE.sub(lambda m: "".join(f"={b:02X}" for b in m.group().encode()), value)


def kv_untoken(token: str) -> str:
    """The inverse of `kv_token`."""
    return re.sub(
        r"(?:=[0-9A-F]{2})+",
        lambda m: bytes.fromhex(m.group().replace("=", "")).decode(errors="replace"),
        token,
    )


def is_value(entry: KeyValue.Entry | None) -> bool:
    """A live value (not a delete/purge marker, not the end-of-snapshot None)."""
    return entry is not None and entry.operation is None and entry.value is not None


async def get_json(kv: KeyValue, key: str) -> tuple[dict[str, Any], int] | None:
    """(value, revision) of a key holding JSON, or None when absent or deleted."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    if not is_value(entry):
        return None
    return codec.loads(entry.value or b"{}"), entry.revision or 0


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
    bucket = kv._name  # nats-py keeps these private; the KV naming scheme is NATS' own
    prefix = f"$KV.{bucket}."
    messages = await consume_all(
        kv._js, f"KV_{bucket}", prefix + pattern, deliver=DeliverPolicy.LAST_PER_SUBJECT
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
            created=meta.timestamp,
            operation=None,
        )
        out.append(entry)
    return out


async def wait_for_value(
    kv: KeyValue,
    key: str,
    done: Callable[[dict[str, Any] | None], bool],
    timeout: float,
) -> dict[str, Any] | None:
    """Watch `key` until `done(value)` (value None = absent) or `timeout`; the last value.

    The watcher yields the current value first, so nothing between a read and the wait
    can be missed.
    """
    watcher = await kv.watch(key)
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(timeout):
            async for entry in watcher:
                if entry is None:
                    if done(last):
                        return last
                    continue
                last = codec.loads(entry.value) if is_value(entry) else None
                if done(last):
                    return last
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()
    return last
