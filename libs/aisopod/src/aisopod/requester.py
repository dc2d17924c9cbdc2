"""Request/reply over one wildcard inbox subscription, leaner than nats-py's `request`.

nats-py's request path is the largest CPU cost of forwarding an RPC (docs/quality.md P2): per
request it validates the subjects with regexes, draws random bytes for the inbox token,
encodes and re-validates every header, chains `asyncio.wait_for` around the reply future,
and its reply travels reader → subscription queue → subscription task → callback → the
waiter (one task hop more than needed). Here a request is: a counter token under a random
per-connection inbox prefix, headers encoded once per identity (`encode_headers`), one
`HPUB` command appended to nats-py's pending buffer and written by a loop callback once
the ready callbacks have run (the requests sent in one loop pass share one socket write;
`compat.natspy.write_soon`), a plain future with a `call_later` deadline; and
`Client._process_msg` resolves the future straight from the reader for messages of our
inbox sid. Every nats-py internal this takes is in `aisopod.compat.natspy`.

Errors keep nats-py's types (`NoRespondersError`, `TimeoutError`), so callers map them as
before. With a plain nats-py client (e.g. the CLI's) replies still arrive, through the
subscription callback.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from nats import errors
from nats.aio.client import Client as NatsClient

from aisopod import requestlog, tracing
from aisopod.compat.natspy import (
    InboxClient,
    max_pending_size,
    send_command,
    subscription_sid,
    write_soon,
)

NO_RESPONDERS_STATUS = "503"
# The error code (dedupe.py) a second copy of a call gets while the first still runs.
_IN_FLIGHT = b'"IN_FLIGHT"'
ASK_AGAIN_S = 0.5
"""After a resent copy found the first in flight: the pause before the next copy."""
_STATUS = "Status"
_SUBJECT_INVALID = re.compile(r"[ \t\r\n]")
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_STATUS_LINE = b"NATS/1.0 503"
_checked_keys: dict[str, str] = {}
"""Header keys already checked (as given → trimmed): a publish carries the same few
(`Nats-Msg-Id`, `Nats-Expected-Last-Subject-Sequence`, the principal's), so each is
matched against the token pattern once, not per message."""
_CHECKED_KEYS_MAX = 1024


def encode_headers(headers: dict[str, str] | None) -> bytes | None:
    """The NATS header block of `headers`, with nats-py's rules: keys must be header tokens
    (BadHeaderError otherwise), values are trimmed and CR/LF become spaces."""
    if not headers:
        return None
    parts = [b"NATS/1.0\r\n"]
    for key, value in headers.items():
        checked = _checked_keys.get(key)
        if checked is None:
            checked = key.strip()
            if checked and not _HEADER_KEY.fullmatch(checked):
                raise errors.BadHeaderError(checked)
            if len(_checked_keys) < _CHECKED_KEYS_MAX:
                _checked_keys[key] = checked
        if not checked:
            continue
        parts.append(f"{checked}: {value.strip().translate(_VALUE_NEWLINES)}\r\n".encode())
    parts.append(b"\r\n")
    return b"".join(parts)


Client = InboxClient
"""The client `Bus` connects with: replies of the request inbox skip the subscription."""


class Requester:
    """Requests of one connection; the inbox subscription is made on first use."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc
        self.sid = -1
        self._prefix = b""
        self._prefix_len = 0
        self._next = 0
        self._futures: dict[bytes, asyncio.Future[bytes]] = {}
        # Requests safe to send twice, by token: sent again after a reconnect (`resend`).
        self._resendable: dict[bytes, bytes] = {}
        self._resent: set[bytes] = set()
        self._starting: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_future()
            # The subscription's task outlives the request that made it: it must not
            # inherit that request's id and trace (their log lines would name it).
            request_id = requestlog.current_request_id.set(None)
            trace = tracing.current.set(None)
            try:
                prefix = self.nc.new_inbox() + "."
                sub = await self.nc.subscribe(prefix + "*", cb=self._on_msg)
            except BaseException as exc:
                self._starting.set_exception(exc)
                self._starting.exception()  # retrieved: a later request retries
                self._starting = None
                raise
            finally:
                requestlog.current_request_id.reset(request_id)
                tracing.current.reset(trace)
            self._loop = asyncio.get_running_loop()  # a connection lives in one loop
            self._prefix = prefix.encode()
            self._prefix_len = len(self._prefix)
            self.sid = subscription_sid(sub)
            if isinstance(self.nc, InboxClient):
                self.nc.receiver = self
            self._starting.set_result(None)
        else:
            await asyncio.shield(self._starting)

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,
        headers: bytes | None = None,
        no_responders_grace_s: float = 0.0,
        resend_on_reconnect: bool = False,
    ) -> bytes:
        """The reply's data; raises NoRespondersError, TimeoutError (nats.errors) and
        nats-py's publish errors (closed, draining, payload too large, buffer full).

        With `no_responders_grace_s`, "no responders" is asked again for that long (within
        `timeout`): a service whose NATS node just died is back, subscriptions and all,
        a moment later on another node, and nobody received the request meanwhile. The
        grace runs from the first "no responders", not from the send: a copy resent on
        a reconnect can meet it long after the first copy went out. The last repeat
        leaves itself time to be answered, so a timeout within the grace still reports
        "no responders", not a timeout.

        With `resend_on_reconnect` (a read, or a wait: safe to receive twice), the request
        is sent again when this connection comes back (`resend`): when its node died, the
        request or its reply may have died with it. A copy sent after "no responders" is
        such a repeat too: the owner may have received an earlier copy."""
        end = time.monotonic() + timeout
        grace_end: float | None = None
        pause = 0.02
        repeat = False
        while True:
            sent = time.monotonic()
            try:
                return await self._request_once(
                    subject,
                    payload,
                    timeout=end - time.monotonic(),
                    headers=headers,
                    resend=resend_on_reconnect,
                    repeat=repeat,
                )
            except errors.NoRespondersError:
                now = time.monotonic()
                if grace_end is None:
                    grace_end = min(now + no_responders_grace_s, end)
                # A repeat is sent only if its answer can be back before the deadline
                # (twice what this one took): one sent later would turn "nobody listens"
                # into a timeout on a slow machine or link.
                if now + pause > grace_end or now + pause + 2 * (now - sent) > end:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
            repeat = resend_on_reconnect

    async def _request_once(
        self,
        subject: str,
        payload: bytes,
        *,
        timeout: float,
        headers: bytes | None = None,
        resend: bool = False,
        repeat: bool = False,
    ) -> bytes:
        token, future = await self._send(subject, payload, headers, resend, repeat)
        assert self._loop is not None
        try:
            deadline = self._loop.call_later(timeout, _expire, future)
            try:
                return await future
            finally:
                deadline.cancel()
        finally:
            self._forget(token)

    async def send(
        self, subject: str, payload: bytes, *, timeout: float, headers: bytes | None = None
    ) -> asyncio.Future[bytes]:
        """A request in two halves: returns once it is handed to the connection, with the
        future of its reply (NoRespondersError, or nats' TimeoutError after `timeout`, set
        on it). Several can be in flight; cancel the future to give up on one."""
        token, future = await self._send(subject, payload, headers, False, False)
        assert self._loop is not None
        deadline = self._loop.call_later(timeout, _expire, future)

        def settled(_: asyncio.Future[bytes]) -> None:
            deadline.cancel()
            self._forget(token)

        future.add_done_callback(settled)
        return future

    async def _send(
        self, subject: str, payload: bytes, headers: bytes | None, resend: bool, repeat: bool
    ) -> tuple[bytes, asyncio.Future[bytes]]:
        """Check, register and hand one request to nats-py's pending buffer. A `repeat`
        (of a copy the owner may be running) takes IN_FLIGHT as "ask again", not as the
        answer."""
        if not self._prefix:
            await self._start()
        nc = self.nc
        if not subject or _SUBJECT_INVALID.search(subject):
            raise errors.BadSubjectError
        if nc.is_closed:
            raise errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise errors.ConnectionDrainingError
        size = len(payload)
        if size > nc.max_payload:
            raise errors.MaxPayloadError
        if not nc.is_connected:
            limit = max_pending_size(nc)
            if limit <= 0 or size + nc.pending_data_size > limit:
                raise errors.OutboundBufferLimitError
        self._next += 1
        token = b"%x" % self._next
        inbox = self._prefix + token
        if headers:
            hlen = len(headers)
            cmd = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(),
                inbox,
                hlen,
                hlen + size,
                headers,
                payload,
            )
        else:
            cmd = b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), inbox, size, payload)
        loop = self._loop
        assert loop is not None
        future: asyncio.Future[bytes] = loop.create_future()
        self._futures[token] = future
        if resend:
            self._resendable[token] = cmd
            if repeat:
                self._resent.add(token)
        try:
            nc.stats["out_msgs"] += 1
            nc.stats["out_bytes"] += size
            # Written when the loop has run what is ready: requests sent together leave
            # in one socket write (compat.natspy.write_soon).
            if not write_soon(nc, cmd):
                await send_command(nc, cmd)
        except BaseException:
            self._forget(token)
            raise
        return token, future

    def _forget(self, token: bytes) -> None:
        self._futures.pop(token, None)
        self._resendable.pop(token, None)
        self._resent.discard(token)

    async def resend(self) -> None:
        """Send again the resendable requests still waiting (call on reconnect): the
        first reply to either copy answers, the other is dropped. A copy that finds the
        first still running (an idempotency key's IN_FLIGHT) is not the answer: another
        copy follows `ASK_AGAIN_S` later, until one gets an answer. The first copy's reply
        may have been lost with the connection it was sent on, and its owner then answers
        a later copy from the stored result."""
        for token, cmd in list(self._resendable.items()):
            future = self._futures.get(token)
            if future is not None and not future.done():
                self._resent.add(token)
                await self.nc._send_command(cmd)
        if self._resendable:
            await self.nc._flush_pending()

    def _ask_again_later(self, token: bytes) -> None:
        if self._loop is not None:
            self._loop.call_later(ASK_AGAIN_S, self._ask_again, token)

    def _ask_again(self, token: bytes) -> None:
        future = self._futures.get(token)
        cmd = self._resendable.get(token)
        if future is None or future.done() or cmd is None or not self.nc.is_connected:
            return  # answered, timed out, or a reconnect's resend follows
        task = asyncio.ensure_future(self._send_again(cmd))
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _send_again(self, cmd: bytes) -> None:
        try:
            await self.nc._send_command(cmd)
            await self.nc._flush_pending()
        except Exception:  # the connection went: its reconnect resends
            return

    def resolve(self, subject: bytes, data: bytes, headers: bytes | None) -> None:
        token = subject[self._prefix_len :]
        future = self._futures.get(token)
        if future is None or future.done():
            return
        if self._resent and token in self._resent and _IN_FLIGHT in data:
            self._ask_again_later(token)
            return
        if headers and headers.startswith(_STATUS_LINE):
            future.set_exception(errors.NoRespondersError())
        else:
            future.set_result(data)

    async def _on_msg(self, msg: Any) -> None:
        """Replies that came the ordinary way (a plain nats-py client)."""
        token = msg.subject.encode()[self._prefix_len :]
        future = self._futures.get(token)
        if future is None or future.done():
            return
        if self._resent and token in self._resent and _IN_FLIGHT in msg.data:
            self._ask_again_later(token)
            return
        if msg.headers and msg.headers.get(_STATUS) == NO_RESPONDERS_STATUS:
            future.set_exception(errors.NoRespondersError())
        else:
            future.set_result(msg.data)


_background: set[asyncio.Future[None]] = set()


def _expire(future: asyncio.Future[bytes]) -> None:
    if not future.done():
        future.set_exception(errors.TimeoutError())
