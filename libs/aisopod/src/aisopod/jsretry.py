"""JetStream calls that ride out a leader election (docs/deployment.md, "NATS cluster").

In a NATS cluster a stream, bucket or consumer has one leader. While a new one is elected
(its node was killed, restarted or partitioned) nothing answers for a few seconds: a
publish or API request gets "no responders" (503) at once, or a "temporarily unavailable"
error, or its reply is lost with the client's own node and it times out. nats-py reports
each of these immediately; a request path would fail for what is only a stall.

`ElectionTolerantJetStream` is the JetStream context every service uses (`Bus.js`, and so
every `KeyValue` and `ObjectStore` made from it): each JetStream API request, publish and
message get it makes is retried with a short back-off while such an error lasts, for at
most `retry_s` in all, then fails with UNAVAILABLE (-32013). Errors that are answers
(not found, wrong last sequence, bad request) are never retried.

A retried timeout may have been stored the first time. API requests (info, named consumer
create, purge, get) are idempotent; every publish carries a `Nats-Msg-Id` (its own, or
one added here), so within the stream's duplicate window (two minutes) the stream drops
a repeat and acks the original: nothing is stored twice. A conditional write (KV create,
compare-and-set update, conditional delete) may still be refused as "wrong last sequence"
by its own stored first copy (seen in a 3-node cluster under load, where the duplicate
check did not spare it): so a retry refused that way reads the last message on its
subject, and when that message carries the retry's own `Nats-Msg-Id` (unique to this
publish call) the write is ours and succeeded; the publish returns its ack instead of the
refusal. Every conditional KV write of the product (run records, lanes, sessions, config,
approvals, agents, cron, auth's stores...) gets this here, in one place. What it cannot
tell: our copy stored and then overwritten by another writer before the retry; that is
refused as a conflict (which, for the caller, it has since become).

A publish with a `Requester` (every Bus has one) goes through its lean request path
(aisopod.requester) instead of nats-py's `request`, and its ack is parsed with orjson:
the same command on the wire, the same errors raised, a fraction of the CPU (a turn makes
about ten of them on the runtime's critical path; docs/runtime.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
import orjson
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, JetStreamManager, api
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from aisopod.errors import Unavailable
from aisopod.requester import Requester, encode_headers

log = logging.getLogger("aisopod.jsretry")

T = TypeVar("T")

DEFAULT_RETRY_S = 15.0
_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 0.5
_LAST_ATTEMPT_S = 1.0
_ATTEMPT_S = 2.5

# JetStream error codes that mean "not now" rather than "no": cluster or leader not
# available, asset not assigned to this server yet, stream or consumer offline, no peer to
# place a replica on (one node is restarting).
_TRANSIENT_ERR_CODES = frozenset({10005, 10007, 10008, 10009, 10118, 10119})

_MSG_ID = "Nats-Msg-Id"
WRONG_LAST_SEQUENCE_CODES = frozenset({10071, 10164})
"""The refusals of a conditional publish (`Nats-Expected-Last-Subject-Sequence`, which
every KV create, compare-and-set update and conditional delete carries), as nats-py's
KeyValue reads them."""
ASYNC_ACK_S = 30.0
"""How long a lean `publish_async` keeps waiting for its ack before failing it."""

# Set while a retry loop runs, so a retried call made inside another (get_msg calls
# _api_request) does not multiply the bound.
_retrying: contextvars.ContextVar[bool] = contextvars.ContextVar("jsretry", default=False)


_last_stall = 0.0


def last_stall() -> float:
    """When (time.monotonic) a JetStream call of this process last failed transiently
    twice in a row: 0.0 when never. Who judges others by their silence (the run reaper)
    waits a while after one, since their writes were stalled by the same election."""
    return _last_stall


def is_transient(exc: BaseException, *, timeouts: bool) -> bool:
    """Whether `exc` is a JetStream "try again shortly" (a timeout only when `timeouts`)."""
    if isinstance(exc, (nats.errors.NoRespondersError, NoStreamResponseError)):
        return True
    if isinstance(exc, ServiceUnavailableError):
        return True
    if isinstance(exc, APIError):
        return exc.err_code in _TRANSIENT_ERR_CODES or exc.code == 503
    if isinstance(exc, (TimeoutError, nats.errors.ConnectionReconnectingError)):
        return timeouts
    return False


async def retry_transient(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    retry_s: float = DEFAULT_RETRY_S,
    timeouts: bool = True,
) -> T:
    """`call()`, again after a short back-off while it fails transiently, for at most
    `retry_s`; then UNAVAILABLE naming `what`."""

    async def attempt(bound: float | None) -> T:
        if bound is None:
            return await call()
        # A request sent while no leader exists is dropped, not refused: it only times
        # out. Short attempts catch the new leader soon (a healthy JetStream answers in
        # milliseconds), and none outlives the bound by more than a last short try.
        # (`asyncio.timeout`, not `wait_for`: no task per call, and an outer cancellation
        # is never swallowed by a result arriving with it.)
        async with asyncio.timeout(bound):
            return await call()

    return await _retry(what, attempt, retry_s, timeouts, nested=None)


async def retry_bounded(
    what: str, call: Callable[[float], Awaitable[T]], *, retry_s: float = DEFAULT_RETRY_S
) -> T:
    """`retry_transient` (timeouts retried) for a call that bounds its own attempt: it is
    given the attempt's bound in seconds and must fail with a TimeoutError by then (a lean
    request's own deadline). No `asyncio.timeout` around it: that context manager costs
    more than the rest of the retry loop (~4 µs a call on uvloop), and the runtime makes
    about twenty such calls per turn (docs/runtime.md, "What a turn costs"). Inside
    another retry loop (which bounds the whole), the call is given `_ATTEMPT_S`."""
    return await _retry(what, call, retry_s, True, nested=_ATTEMPT_S)


async def _retry(
    what: str,
    attempt: Callable[[Any], Awaitable[T]],
    retry_s: float,
    timeouts: bool,
    *,
    nested: float | None,
) -> T:
    """The retry loop: `attempt(bound)`, the bound None when timeouts are not retried;
    inside another loop, one attempt given `nested`."""
    if _retrying.get():
        return await attempt(nested)
    token = _retrying.set(True)
    try:
        deadline = time.monotonic() + retry_s
        backoff = _FIRST_BACKOFF_S
        attempts = 0
        while True:
            attempts += 1
            try:
                bound = None
                if timeouts:
                    bound = min(max(deadline - time.monotonic(), _LAST_ATTEMPT_S), _ATTEMPT_S)
                result = await attempt(bound)
            except Exception as exc:
                if not is_transient(exc, timeouts=timeouts):
                    raise
                if attempts > 1:  # a stall, not the odd 503 a second try gets past
                    global _last_stall
                    _last_stall = time.monotonic()
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("%s: JetStream unavailable after %d attempts", what, attempts)
                    raise Unavailable(
                        f"JetStream did not answer {what} within {retry_s:g} s "
                        "(a NATS node is down or a leader election is in progress); "
                        "retry shortly",
                        code="JETSTREAM_UNAVAILABLE",
                    ) from exc
                if attempts == 1:
                    log.info("%s: %s; retrying for up to %g s", what, type(exc).__name__, left)
                await asyncio.sleep(min(backoff, left))
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if attempts > 1:
                log.info("%s: succeeded after %d attempts", what, attempts)
            return result
    finally:
        _retrying.reset(token)


class _RetriedApi(JetStreamManager):
    """Every JetStream API request (`_api_request`, which all management calls use) retried
    while it fails transiently; with a requester, sent over its lean path."""

    retry_s: float = DEFAULT_RETRY_S
    _requester: Requester | None = None

    async def _api_request(
        self, req_subject: str, req: bytes = b"", timeout: float = 5
    ) -> dict[str, Any]:
        what = f"JetStream request {_api_name(req_subject, self._prefix)}"
        if self._requester is not None:
            lean = self._api_request_lean
            return await retry_bounded(
                what,
                lambda bound: lean(req_subject, req, timeout=min(timeout, bound)),
                retry_s=self.retry_s,
            )
        parent = super()._api_request
        return await retry_transient(
            what, lambda: parent(req_subject, req, timeout=timeout), retry_s=self.retry_s
        )

    async def _api_request_lean(
        self, req_subject: str, req: bytes = b"", timeout: float = 5
    ) -> dict[str, Any]:
        """nats-py's `_api_request` over the lean request path: the same errors
        (ServiceUnavailableError for no responders, APIError and its kinds)."""
        resp = await self._api_answer_lean(req_subject, req, timeout)
        if "error" in resp:
            APIError.from_error(resp["error"])  # raises the error's own kind
        return resp

    async def _api_answer_lean(
        self, req_subject: str, req: bytes, timeout: float
    ) -> dict[str, Any]:
        """The API's answer on the lean path, an error answer included (not raised);
        ServiceUnavailableError when nobody answers."""
        assert self._requester is not None
        try:
            data = await self._requester.request(req_subject, req, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise ServiceUnavailableError from None
        resp: dict[str, Any] = orjson.loads(data)
        return resp


class _RetriedManager(_RetriedApi):
    def __init__(
        self,
        conn: NATS,
        *,
        prefix: str,
        timeout: float,
        retry_s: float,
        requester: Requester | None = None,
    ) -> None:
        super().__init__(conn, prefix=prefix, timeout=timeout)
        self.retry_s = retry_s
        self._requester = requester


class ElectionTolerantJetStream(_RetriedApi, JetStreamContext):
    """A JetStream context whose requests retry transient cluster errors (module doc)."""

    def __init__(
        self,
        conn: NATS,
        *,
        retry_s: float = DEFAULT_RETRY_S,
        timeout: float = 5,
        requester: Requester | None = None,
    ) -> None:
        JetStreamContext.__init__(self, conn, timeout=timeout)
        self.retry_s = retry_s
        self._requester = requester

    @property
    def _jsm(self) -> JetStreamManager:
        # nats-py's subscriptions (KV watchers, consumer info) make their API requests
        # through a fresh manager: make it one that retries too.
        return _RetriedManager(
            self._nc,
            prefix=self._prefix,
            timeout=self._timeout,
            retry_s=self.retry_s,
            requester=self._requester,
        )

    async def get_msg(
        self,
        stream_name: str,
        seq: int | None = None,
        subject: str | None = None,
        direct: bool | None = False,
        next: bool | None = False,
    ) -> api.RawStreamMsg:
        what = f"reading from {stream_name}"
        if not direct and self._requester is not None:
            lean = self._get_msg_lean
            return await retry_bounded(
                what,
                lambda bound: lean(stream_name, seq=seq, subject=subject, next=next, bound=bound),
                retry_s=self.retry_s,
            )
        parent = super().get_msg
        return await retry_transient(
            what,
            lambda: parent(stream_name, seq=seq, subject=subject, direct=direct, next=next),
            retry_s=self.retry_s,
        )

    async def _get_msg_lean(
        self,
        stream_name: str,
        seq: int | None = None,
        subject: str | None = None,
        next: bool | None = False,
        *,
        bound: float,
    ) -> api.RawStreamMsg:
        """nats-py's non-direct `get_msg` (the same request and result) without its JSON
        and e-mail header parsers, bounded by `bound` seconds (`retry_bounded`)."""
        request: dict[str, Any] = {}
        if next:
            request = {"seq": seq, "next_by_subj": subject}
        elif subject:
            request = {"last_by_subj": subject}
        elif seq:
            request = {"seq": seq}
        found = await self._api_request_lean(
            f"{self._prefix}.STREAM.MSG.GET.{stream_name}",
            orjson.dumps(request),
            timeout=min(self._timeout, bound),
        )
        message = found["message"]
        raw = api.RawStreamMsg(
            subject=message.get("subject"),
            seq=message.get("seq"),
            stream=message.get("stream"),
            time=api.RawStreamMsg._parse_utc_iso(message["time"]) if "time" in message else None,
        )
        if message.get("hdrs"):
            raw.headers = parse_headers(base64.b64decode(message["hdrs"]))
        raw.data = base64.b64decode(message["data"]) if message.get("data") else None
        return raw

    @property
    def lean(self) -> bool:
        """Whether requests travel the requester's lean path (`last_on_subject` needs it)."""
        return self._requester is not None

    async def last_on_subject(
        self, stream_name: str, subject: str
    ) -> tuple[int, bytes | None, bytes | None] | None:
        """The last message on `subject` as (seq, data, header block), or None when the
        stream holds none (a 404, which nats-py's `KeyValue.get` turns into "no such key"):
        the non-direct `get_msg` of a KV read, on the lean path, with one retry loop and
        no exception raised and caught for an absent key. The runtime reads five keys per
        turn, most of them absent; `kvview.get_json` uses it."""
        api_subject = f"{self._prefix}.STREAM.MSG.GET.{stream_name}"
        request = orjson.dumps({"last_by_subj": subject})

        async def attempt(bound: float) -> dict[str, Any] | None:
            resp = await self._api_answer_lean(api_subject, request, min(self._timeout, bound))
            error = resp.get("error")
            if error is None:
                message: dict[str, Any] = resp["message"]
                return message
            if error.get("code") == 404:
                return None
            APIError.from_error(error)  # raises its own kind (503s are retried)
            raise AssertionError("unreachable")

        message = await retry_bounded(f"reading from {stream_name}", attempt, retry_s=self.retry_s)
        if message is None or message.get("subject") != subject:
            return None
        hdrs, data = message.get("hdrs"), message.get("data")
        return (
            int(message.get("seq") or 0),
            base64.b64decode(data) if data else None,
            base64.b64decode(hdrs) if hdrs else None,
        )

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> api.PubAck:
        headers = _with_msg_id(headers)
        parent = super().publish if self._requester is None else self._publish_lean
        lean = self._requester is not None
        own_timeout = self._timeout if timeout is None else timeout
        attempts = 0

        async def attempt(bound: float) -> api.PubAck:
            nonlocal attempts
            attempts += 1
            try:
                # A copy per attempt: nats-py adds to the dict it is given.
                sent = parent(
                    subject,
                    payload,
                    timeout=min(own_timeout, bound) if lean else timeout,
                    stream=stream,
                    headers=dict(headers),
                    msg_ttl=msg_ttl,
                )
                if lean:  # the lean request bounds itself
                    return await sent
                async with asyncio.timeout(bound):
                    return await sent
            except APIError as exc:
                # Only a retry can meet its own first copy (module doc).
                if attempts == 1 or exc.err_code not in WRONG_LAST_SEQUENCE_CODES:
                    raise
                async with asyncio.timeout(bound):
                    own = await self._own_stored_copy(subject, headers[_MSG_ID])
                if own is None:
                    raise
                log.info(
                    "storing to %s: a retry met its own stored copy (seq %d)", subject, own.seq
                )
                return own

        return await retry_bounded(f"storing to {subject}", attempt, retry_s=self.retry_s)

    async def _own_stored_copy(self, subject: str, msg_id: str) -> api.PubAck | None:
        """The ack of the last message on `subject` when it is the one named `msg_id`
        (this publish's first attempt, stored though its ack was lost), else None."""
        try:
            stream = await self.find_stream_name_by_subject(subject)
            last = await self.get_msg(stream, subject=subject)
        except NotFoundError:
            return None
        if (last.headers or {}).get(_MSG_ID) != msg_id or last.seq is None:
            return None
        return api.PubAck(stream=stream, seq=last.seq, duplicate=True)

    async def _publish_lean(
        self,
        subject: str,
        payload: bytes,
        timeout: float | None,
        stream: str | None,
        headers: dict[str, Any],
        msg_ttl: float | None,
    ) -> api.PubAck:
        """nats-py's `JetStreamContext.publish` over the lean request path: the same
        headers and errors (NoStreamResponseError for no responders, APIError and its
        kinds for an error ack, nats' TimeoutError)."""
        assert self._requester is not None
        if stream is not None:
            headers[api.Header.EXPECTED_STREAM] = stream
        if msg_ttl is not None:
            headers[api.Header.MSG_TTL] = str(int(msg_ttl))
        try:
            data = await self._requester.request(
                subject,
                payload,
                timeout=self._timeout if timeout is None else timeout,
                headers=encode_headers(headers),
            )
        except nats.errors.NoRespondersError:
            raise NoStreamResponseError from None
        return _pub_ack(data)

    async def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        wait_stall: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> asyncio.Future[api.PubAck]:
        """Sent at once as nats-py does; when the ack comes back transient, the message is
        published again (in the background, within the bound) and the future resolves
        with that outcome."""
        headers = _with_msg_id(headers)
        if self._requester is None:
            first = await super().publish_async(
                subject,
                payload,
                wait_stall=wait_stall,
                stream=stream,
                headers=dict(headers),
                msg_ttl=msg_ttl,
            )
        else:
            first = await self._publish_async_lean(subject, payload, stream, dict(headers), msg_ttl)
        outcome: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[api.PubAck]) -> None:
            if outcome.done():
                return
            if done.cancelled():
                outcome.cancel()
                return
            exc = done.exception()
            if exc is None:
                outcome.set_result(done.result())
            elif is_transient(exc, timeouts=False):
                task = asyncio.ensure_future(
                    self.publish(
                        subject,
                        payload,
                        stream=stream,
                        headers=dict(headers),
                        msg_ttl=msg_ttl,
                    )
                )
                _background.add(task)
                task.add_done_callback(_background.discard)
                task.add_done_callback(settle)
            else:
                outcome.set_exception(exc)

        first.add_done_callback(settle)
        # The caller may give up on `outcome` (wait_for); nothing else to cancel then.
        return outcome

    async def _publish_async_lean(
        self,
        subject: str,
        payload: bytes,
        stream: str | None,
        headers: dict[str, Any],
        msg_ttl: float | None,
    ) -> asyncio.Future[api.PubAck]:
        """nats-py's `publish_async` over the requester: sent when this returns, the ack's
        future fails like nats-py's (NoStreamResponseError, APIError kinds); an ack not
        back within ASYNC_ACK_S fails with nats' TimeoutError (nats-py's never ends: every
        caller waits for it with a shorter timeout of its own)."""
        assert self._requester is not None
        if stream is not None:
            headers[api.Header.EXPECTED_STREAM] = stream
        if msg_ttl is not None:
            headers[api.Header.MSG_TTL] = str(int(msg_ttl))
        sent = await self._requester.send(
            subject, payload, timeout=ASYNC_ACK_S, headers=encode_headers(headers)
        )
        ack: asyncio.Future[api.PubAck] = asyncio.get_running_loop().create_future()

        def parse(reply: asyncio.Future[bytes]) -> None:
            if ack.done():
                return
            if reply.cancelled():
                ack.cancel()
                return
            exc = reply.exception()
            if isinstance(exc, nats.errors.NoRespondersError):
                ack.set_exception(NoStreamResponseError())
            elif exc is not None:
                ack.set_exception(exc)
            else:
                try:
                    ack.set_result(_pub_ack(reply.result()))
                except APIError as error:
                    ack.set_exception(error)

        def abandon(done: asyncio.Future[api.PubAck]) -> None:
            if done.cancelled():
                sent.cancel()  # frees the requester's slot at once

        sent.add_done_callback(parse)
        ack.add_done_callback(abandon)
        return ack


_background: set[asyncio.Future[Any]] = set()


def _pub_ack(data: bytes) -> api.PubAck:
    """A publish's ack, or the APIError (of its own kind) it carries."""
    ack = orjson.loads(data)
    if "error" in ack:
        APIError.from_error(ack["error"])  # raises
    return api.PubAck(
        stream=ack["stream"],
        seq=ack["seq"],
        domain=ack.get("domain"),
        duplicate=ack.get("duplicate"),
    )


def parse_headers(block: bytes) -> dict[str, str] | None:
    """A stored message's NATS header block (`NATS/1.0\r\nKey: value\r\n…`) as a dict,
    as nats-py makes it (None when empty; the last of repeated keys wins)."""
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n")[1:]:
        key, colon, value = line.partition(b":")
        if colon and key.strip():
            headers[key.strip().decode()] = value.strip().decode()
    return headers or None


def _with_msg_id(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Every publish names itself, so a retry after a lost ack (the usual symptom of an
    election: the request times out) is dropped by the stream as a duplicate and acked
    with the original's sequence, instead of storing twice or failing a KV condition."""
    if headers and _MSG_ID in headers:
        return headers
    return {**(headers or {}), _MSG_ID: next_msg_id()}


class _MsgIds:
    """A random 128-bit prefix per process and a counter: one draw per process instead of
    a `uuid4` per publish (about a dozen per agent turn)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(16)
        self.counter = itertools.count()


_msg_ids = _MsgIds()
# A forked child must not continue its parent's sequence under the same prefix.
os.register_at_fork(after_in_child=_msg_ids.reset)


def next_msg_id() -> str:
    """An id no other publish uses within the streams' de-duplication window."""
    return f"{_msg_ids.prefix}-{next(_msg_ids.counter):x}"


def _api_name(subject: str, prefix: str) -> str:
    """`STREAM.INFO` of `$JS.API.STREAM.INFO.X`: what the message names, without the asset."""
    rest = subject.removeprefix(prefix + ".").split(".")
    return ".".join(rest[:2])
