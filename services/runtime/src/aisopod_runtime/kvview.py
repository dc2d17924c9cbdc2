"""Reading and awaiting KV state: key escaping, JSON values, waits (complete reads of
streams and buckets are `aisopod.jsread`).

KV keys allow only `[-/_=.A-Za-z0-9]`, and `.` separates tokens for watch patterns, so
free-form values (session keys such as `agent:main:main`) are escaped with `kv_token`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable
from typing import Any

from nats.js.errors import InvalidKeyError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from aisopod import codec
from aisopod.compat.natspy import (
    kv_direct,
    kv_jetstream,
    kv_key_valid,
    kv_stream,
    kv_subject,
)
from aisopod.jsretry import ElectionTolerantJetStream, parse_headers

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@functools.lru_cache(maxsize=4096)
def kv_token(value: str) -> str:
    """One KV key token for a free-form value: anything outside `[A-Za-z0-9_-]` → `=XX`.
    Cached: a turn escapes its session key for the session entry, the lane and the
    system-event queue, each several times."""
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
    """(value, revision) of a key holding JSON, or None when absent or deleted.

    What nats-py's `kv.get` reads (the same non-direct request, key check and answers),
    on the lean path when the bucket's context has one: without nats-py's layers, the
    raised and caught "not found" of an absent key, or a second retry loop, a read costs
    the runtime about half the CPU (docs/runtime.md, "What a turn costs")."""
    js = kv_jetstream(kv)
    if not isinstance(js, ElectionTolerantJetStream) or not js.lean or kv_direct(kv):
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if not is_value(entry):
            return None
        return codec.loads(entry.value or b"{}"), entry.revision or 0
    if not kv_key_valid(key):
        raise InvalidKeyError
    found = await js.last_on_subject(kv_stream(kv), kv_subject(kv, key))
    if found is None:
        return None
    revision, data, headers = found
    if data is None or (headers is not None and _deleted(headers)):
        return None
    return codec.loads(data), revision


def _deleted(headers: bytes) -> bool:
    """A delete or purge marker (`KV-Operation: DEL|PURGE`), as nats-py's get judges it."""
    if KV_OP.encode() not in headers:
        return False
    op = (parse_headers(headers) or {}).get(KV_OP)
    return op in (KV_DEL, KV_PURGE)


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
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        # Within the wait too: in a leader election the watch's consumer takes a while.
        async with asyncio.timeout_at(deadline):
            watcher = await kv.watch(key)
    except TimeoutError:
        found = await get_json(kv, key)  # any replica answers a get
        return found[0] if found else None
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout_at(deadline):
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
