"""Idempotency keys, cluster-wide: KV `dedupe` maps a key to the first result for 5 minutes.

`Deduper.run(key, fn)`:
- first caller: creates a `pending` entry (KV create is atomic across replicas), runs `fn`,
  stores `done` with the result;
- a repeat while pending: CONFLICT (in flight); a repeat after: the stored result;
- an error: the entry is deleted, so a retry runs again (an error means the caller got no
  result to repeat);
- a pending entry whose owner died (older than `stale_after_s`) is taken over.

`Deduper.run_claiming(key, fn)` sends the `pending` create without waiting for it and runs
`fn(claimed)` meanwhile: `fn` does its reads and awaits `claimed()` before its first write,
so the create and the reads share a round trip. `claimed()` raises `Repeated` in a repeat
(the first result is answered instead) and CONFLICT while the first is in flight; whatever
`fn` raises, the create's outcome decides the answer as it would have before `fn` ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.compat.natspy import kv_jetstream, kv_subject
from aisopod.errors import Conflict

# The `done` entry's ack may wait out a leader election (jsretry.py) before it comes.
STORE_TIMEOUT_S = 20.0
MSG_ID = "Nats-Msg-Id"
# A healthy JetStream acks in milliseconds; past this the entry is sent again (under the
# same message id, so a first copy that was stored is not stored twice).
ACK_PATIENCE_S = 2.5


class Repeated(Exception):
    """Raised by `claimed()` in a call whose key already has its result: stop before
    writing anything; `run_claiming` answers with the first result."""


Claimed = Callable[[], Awaitable[None]]


class Deduper:
    def __init__(self, kv: KeyValue, *, instance: str, stale_after_s: float = 120.0) -> None:
        self.kv = kv
        self.instance = instance
        self.stale_after_s = stale_after_s

    @staticmethod
    def kv_key(key: str) -> str:
        # Client keys may hold any character; KV keys may not. A hash is exact enough.
        return hashlib.sha256(key.encode()).hexdigest()

    async def run(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        result, stored = await self.run_then_store(key, fn)
        await stored
        return result

    async def run_then_store(
        self,
        key: str,
        fn: Callable[[], Awaitable[Any]],
        on_replay: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> tuple[Any, Awaitable[None]]:
        """`run`, returning as soon as the `done` entry is written to the connection, with
        its acknowledgement still to await. A reply sent in between goes out after the
        write on the same connection, so a repeat it provokes finds the result stored;
        the caller saves a round trip and still learns (later) if the write failed.
        A repeat is answered by `on_replay(first result)` when given."""
        kv_key = self.kv_key(key)
        claim = await self._claim(kv_key)
        if isinstance(claim, _Done):
            return await _replayed(claim, on_replay), _nothing()
        try:
            result = codec.to_wire(await fn())
        except BaseException:
            await self._forget(kv_key, claim)
            raise
        return result, await self._store(kv_key, result)

    async def run_claiming(
        self,
        key: str,
        fn: Callable[[Claimed], Awaitable[Any]],
        on_replay: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> tuple[Any, Awaitable[None]]:
        """`run_then_store` with the `pending` create overlapping `fn`'s reads: `fn` must
        await `claimed()` before anything it writes (module docstring)."""
        kv_key = self.kv_key(key)
        claiming = asyncio.ensure_future(self._claim(kv_key))

        async def claimed() -> None:
            if isinstance(await asyncio.shield(claiming), _Done):
                raise Repeated

        try:
            produced = await fn(claimed)
        except Exception:
            # Read errors, Repeated, CONFLICT: the claim decides, as if `fn` had not run.
            claim = await claiming  # raises CONFLICT (in flight) or the create's error
            if isinstance(claim, _Done):
                return await _replayed(claim, on_replay), _nothing()
            await self._forget(kv_key, claim)
            raise
        except BaseException:  # cancelled: the claim, once made, is given up
            claiming.add_done_callback(lambda done: self._forget_soon(kv_key, done))
            raise
        claim = await claiming  # awaited by `fn` already (it wrote): at hand
        if isinstance(claim, _Done):  # `fn` wrote nothing it was not allowed to
            return await _replayed(claim, on_replay), _nothing()
        result = codec.to_wire(produced)
        return result, await self._store(kv_key, result)

    async def _claim(self, kv_key: str) -> int | _Done:
        """The revision of this call's `pending` entry, or the first call's result; raises
        CONFLICT while another call with the key runs."""
        call = uuid.uuid4().hex  # tells this call's own entry from a repeat's
        pending = codec.dumps(
            {"state": "pending", "owner": self.instance, "at": time.time(), "call": call}
        )
        try:
            return await self.kv.create(kv_key, pending)
        except KeyWrongLastSequenceError:
            return await self._existing(kv_key, pending, call)

    async def _store(self, kv_key: str, result: Any) -> Awaitable[None]:
        """The `done` entry, sent; its acknowledgement to await."""
        done = codec.dumps({"state": "done", "result": result})
        # KeyValue.put is a JetStream publish on the key's subject; sent without waiting.
        js, subject = kv_jetstream(self.kv), kv_subject(self.kv, kv_key)
        named = {MSG_ID: uuid.uuid4().hex}
        ack = await js.publish_async(subject, done, headers=dict(named))

        async def store_again() -> None:
            await js.publish(subject, done, headers=dict(named))

        return _acked(ack, store_again)

    async def _existing(self, kv_key: str, pending: bytes, call: str) -> int | _Done:
        """The stored result, or the revision of a pending entry that is ours: written by
        this call, or stale and taken over."""
        try:
            entry = await self.kv.get(kv_key)
        except KeyNotFoundError:
            return await self.kv.create(kv_key, pending)
        body = codec.loads(entry.value or b"{}")
        if body.get("state") == "done":
            return _Done(body.get("result"))
        if body.get("call") == call:
            # This call's own create, stored though its answer was lost in a leader
            # election: its retry met it as "wrong last sequence" (the repeated message
            # id did not spare it that, in a 3-node cluster under load).
            return entry.revision or 0
        if time.time() - float(body.get("at", 0)) < self.stale_after_s:
            raise Conflict("a request with this idempotencyKey is in flight", code="IN_FLIGHT")
        try:
            return await self.kv.update(kv_key, pending, last=entry.revision)
        except KeyWrongLastSequenceError:
            raise Conflict(
                "a request with this idempotencyKey is in flight", code="IN_FLIGHT"
            ) from None

    async def _forget(self, kv_key: str, revision: int) -> None:
        with contextlib.suppress(Exception):  # best effort; the bucket TTL cleans up
            await self.kv.delete(kv_key, last=revision)

    def _forget_soon(self, kv_key: str, claiming: asyncio.Future[int | _Done]) -> None:
        if claiming.cancelled() or claiming.exception() is not None:
            return
        claim = claiming.result()
        if not isinstance(claim, _Done):
            task = asyncio.ensure_future(self._forget(kv_key, claim))
            _background.add(task)
            task.add_done_callback(_background.discard)


_background: set[asyncio.Future[None]] = set()


async def _replayed(done: _Done, on_replay: Callable[[Any], Awaitable[Any]] | None) -> Any:
    if on_replay is not None:
        return codec.to_wire(await on_replay(done.result))
    return done.result


async def _nothing() -> None:
    return None


async def _acked(ack: asyncio.Future[Any], store_again: Callable[[], Awaitable[None]]) -> None:
    """The `done` entry stored. When its ack is slow to come, it is sent again: the first
    copy may have been written to a connection that broke (a NATS node lost), and with it
    usually the reply it went ahead of. A repeat of the request (the edge resends it on
    reconnect) then finds `done` and gets the result, instead of IN_FLIGHT until the
    pending entry is stale."""
    try:
        await asyncio.wait_for(ack, ACK_PATIENCE_S)
        return
    except Exception:  # not acked in time (or failed): store it again, same message id
        pass
    await asyncio.wait_for(store_again(), STORE_TIMEOUT_S)


class _Done:
    __slots__ = ("result",)

    def __init__(self, result: Any) -> None:
        self.result = result
