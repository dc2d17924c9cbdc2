"""Requests after `hello`: rate limit, catalogue look-up, scope/role check, then either a
local handler (methods this service owns), the edge replicas (edgereads.py) or the owner
over NATS (`<prefix>.rpc.<method>`)
with the principal in headers. Requests of one connection run concurrently; replies go out
in completion order. Errors reach the wire only here (and in the handshake).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from aisopod import requestlog, tracing
from aisopod.bus import NO_RESPONDERS_GRACE_S, decode_reply, resendable
from aisopod.catalogue import get_method
from aisopod.catalogue.spec import MethodSpec
from aisopod.errors import (
    AisopodError,
    Forbidden,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    RateLimited,
    Timeout,
    Unavailable,
)
from aisopod.jsonrpc import Call, Decoded, Rejected, RequestId
from aisopod.principal import H_TRACE
from aisopod.scopes import Requirement, Role
from aisopod_ws_gateway import metrics
from aisopod_ws_gateway.codec import JSONRPC, Codec

if TYPE_CHECKING:
    from aisopod.bus import Bus
    from aisopod.config.sections.gateway import GatewaySection
    from aisopod.settings import ServiceSettings
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.edgereads import EdgeReads

Reply = tuple[bytes, AisopodError | None]
Outcome = Reply | Awaitable[Reply | None] | None
LocalHandler = Callable[["Connection", Call, MethodSpec, "Codec"], Outcome]

TIMEOUT_MARGIN_S = 2.0


class Dispatcher:
    def __init__(
        self,
        bus: Bus,
        config: Callable[[], GatewaySection],
        settings: ServiceSettings,
        local: dict[str, LocalHandler],
        edge: EdgeReads | None = None,
    ) -> None:
        """`edge`: reads answered from this process's KV replicas instead of the owner."""
        self.edge = edge
        self.bus = bus
        self.config = config
        self.settings = settings
        self.local = local

    # -- frames -------------------------------------------------------------------------
    def frame(self, conn: Connection, decoded: Decoded) -> None:
        if not decoded.batch:
            outcome = self.handle(conn, decoded.items[0])
            if outcome is None:
                return
            if isinstance(outcome, tuple):
                self._send(conn, outcome)
            else:
                conn.spawn(self._finish(conn, outcome))
            return
        outcomes = [self.handle(conn, item) for item in decoded.items]
        pending = [o for o in outcomes if o is not None and not isinstance(o, tuple)]
        if pending:
            conn.spawn(self._finish_batch(conn, outcomes))
            return
        replies = [o for o in outcomes if isinstance(o, tuple)]
        if replies:
            self._send_batch(conn, replies)

    async def _finish(self, conn: Connection, work: Awaitable[Reply | None]) -> None:
        reply = await work
        if reply is not None:
            self._send(conn, reply)

    async def _finish_batch(self, conn: Connection, outcomes: list[Outcome]) -> None:
        async def resolve(outcome: Outcome) -> Reply | None:
            if outcome is None or isinstance(outcome, tuple):
                return outcome
            return await outcome

        done = await asyncio.gather(*(resolve(o) for o in outcomes))
        replies = [r for r in done if r is not None]
        if replies:
            self._send_batch(conn, replies)

    def _send(self, conn: Connection, reply: Reply) -> None:
        conn.send_payload(reply[0])
        conn.count_reply(reply[1])

    def _send_batch(self, conn: Connection, replies: list[Reply]) -> None:
        conn.send_payload(conn.codec.batch([data for data, _ in replies]))
        for _, error in replies:
            conn.count_reply(error)

    # -- one request ----------------------------------------------------------------------
    def handle(
        self, conn: Connection, item: Call | Rejected, codec: Codec | None = None
    ) -> Outcome:
        """One request, answered in `codec` (the connection's own unless given: adapters
        read our answers through JSON-RPC)."""
        codec = codec or conn.codec
        if isinstance(item, Rejected):
            return error_reply(codec, item.id, item.error)
        if tracing.ON:
            return self._traced(conn, item, codec)
        if not requestlog.active():
            return self._handle(conn, item, codec, None)
        # Request logging on: an id per call, sent to the owner, and one line when it ends.
        started, request_id = time.perf_counter(), requestlog.new_id()
        outcome = self._handle(conn, item, codec, request_id)
        if outcome is None or isinstance(outcome, tuple):
            _log_request(conn, item, outcome, started, request_id)
            return outcome
        return self._logged(conn, item, outcome, started, request_id)

    async def _logged(
        self,
        conn: Connection,
        item: Call,
        work: Awaitable[Reply | None],
        started: float,
        request_id: str,
    ) -> Reply | None:
        # The log lines of the call name it (reset after: an OpenClaw adapter's task makes
        # several calls one after the other).
        token = requestlog.current_request_id.set(request_id)
        try:
            reply = await work
        finally:
            requestlog.current_request_id.reset(token)
        _log_request(conn, item, reply, started, request_id)
        return reply

    def _traced(self, conn: Connection, item: Call, codec: Codec) -> Outcome:
        """`handle` with tracing on: a span per request (aisopod.tracing), the child of the
        frame's `traceparent`, else of the task's (an OpenClaw frame's adapted calls),
        else a new trace; a request id too, so its log lines can be found."""
        started, request_id = time.perf_counter(), requestlog.new_id()
        span = tracing.start(
            item.method,
            parent=item.traceparent,
            attributes={
                "rpc.system": "jsonrpc",
                "rpc.method": item.method,
                "aisopod.wire": conn.codec.name,
                "aisopod.conn_id": conn.conn_id,
                "aisopod.request_id": request_id,
            },
        )
        outcome = self._handle(conn, item, codec, request_id)
        if outcome is None or isinstance(outcome, tuple):
            _traced_end(conn, item, outcome, started, request_id, span)
            return outcome
        return self._traced_wait(conn, item, outcome, started, request_id, span)

    async def _traced_wait(
        self,
        conn: Connection,
        item: Call,
        work: Awaitable[Reply | None],
        started: float,
        request_id: str,
        span: tracing.Span | None,
    ) -> Reply | None:
        # The forward and its log lines see the span and the id; reset after, since an
        # OpenClaw adapter's task makes several calls one after the other.
        trace = tracing.current.set(span.active if span is not None else None)
        token = requestlog.current_request_id.set(request_id)
        reply: Reply | None = None
        try:
            reply = await work
        finally:
            _traced_end(conn, item, reply, started, request_id, span)
            requestlog.current_request_id.reset(token)
            tracing.current.reset(trace)
        return reply

    def _handle(
        self, conn: Connection, item: Call, codec: Codec, request_id: str | None
    ) -> Outcome:
        metrics.REQUESTS.inc()
        limited = _rate_limited(conn)
        if limited is not None:
            return self._error(codec, item, limited)
        spec = get_method(item.method)
        if spec is None:
            if item.method == "connect":
                return self._error(
                    codec, item, InvalidRequest("already connected", code="CONNECTED")
                )
            return self._error(codec, item, MethodNotFound(f"unknown method: {item.method}"))
        if spec.name == "connect":
            return self._error(codec, item, InvalidRequest("already connected", code="CONNECTED"))
        params = item.params
        requirement = spec.requirement_for(params if isinstance(params, dict) else None)
        view = conn.view
        if view is None or not view.may(requirement):
            return self._error(codec, item, _forbidden(requirement, view.role if view else None))
        if conn.in_flight >= self.config().max_in_flight:
            return self._error(
                codec,
                item,
                RateLimited(
                    "too many requests in flight on this connection",
                    code="TOO_MANY_IN_FLIGHT",
                    retryAfterMs=100,
                ),
            )
        local = self.local.get(spec.name)
        if local is not None:
            outcome = local(conn, item, spec, codec)
            if item.notification:
                if outcome is not None and not isinstance(outcome, tuple):
                    conn.spawn(_discard(outcome))
                return None
            return outcome
        edge = self.edge
        if edge is None:
            return self.forward(conn, item, spec, codec, request_id)
        answered = edge.answer(conn, item, spec, codec)
        if answered is not None:
            return answered
        return edge.forwarded(conn, requirement, self.forward(conn, item, spec, codec, request_id))

    def admit(self, conn: Connection, methods: tuple[str, ...]) -> AisopodError | None:
        """The checks one request gets (rate, then scope for each of `methods`), for an
        answer built here from several of our methods at once (OpenClaw's `health`)."""
        metrics.REQUESTS.inc()
        limited = _rate_limited(conn)
        if limited is not None:
            return limited
        view = conn.view
        for method in methods:
            spec = get_method(method)
            assert spec is not None, method
            requirement = spec.requirement_for(None)
            if view is None or not view.may(requirement):
                return _forbidden(requirement, view.role if view else None)
        return None

    async def invoke(self, conn: Connection, method: str, params: dict[str, Any]) -> Any:
        """Our `method` for `conn` with every check a request of its own gets (rate,
        scope, in-flight): its result, or raise its error. The OpenClaw adapters build on
        this; the answer is read back from JSON-RPC, the one format with a decoder."""
        outcome = self.handle(conn, Call(method, params, 0), JSONRPC)
        reply = outcome if outcome is None or isinstance(outcome, tuple) else await outcome
        if reply is None:  # pragma: no cover - only notifications go unanswered
            raise InternalError(f"{method} gave no answer")
        data, error = reply
        if error is not None:
            raise error
        return decode_reply(data)

    def _error(self, codec: Codec, call: Call, error: AisopodError) -> Reply | None:
        if call.notification:
            return None
        return error_reply(codec, call.id, error)

    async def forward(
        self,
        conn: Connection,
        call: Call,
        spec: MethodSpec,
        codec: Codec,
        request_id: str | None = None,
    ) -> Reply | None:
        params = call.params if call.params is not None else {}
        if not isinstance(params, dict):
            return self._error(codec, call, InvalidParams("params must be an object"))
        bus = self.bus
        timeout = self.timeout_for(spec, params)
        headers = conn.nats_header_block
        if request_id is not None:  # request logging or tracing is on
            headers = _with_request_id(headers, request_id, tracing.current.get())
        try:
            data = await bus.requester.request(
                bus.subjects.rpc(spec.name),
                orjson.dumps(params),
                timeout=timeout,
                headers=headers,
                no_responders_grace_s=NO_RESPONDERS_GRACE_S,
                # Reads, waits, and calls a repeat of which the owner de-duplicates.
                resend_on_reconnect=resendable(spec.name, params),
            )
        except NoRespondersError:
            return self._error(
                codec,
                call,
                Unavailable(f"the owner of {spec.name} is not available", code="NO_RESPONDERS"),
            )
        except NatsTimeout:
            return self._error(
                codec,
                call,
                Timeout(f"{spec.name} got no reply within {timeout:.0f}s", code="NO_REPLY"),
            )
        if call.notification:
            return None
        spliced = codec.splice(call.id, data)
        if spliced is not None:
            return spliced, None
        try:
            result = decode_reply(data)
        except AisopodError as exc:
            return error_reply(codec, call.id, exc)
        return ok_reply(codec, call.id, result)

    def timeout_for(self, spec: MethodSpec, params: dict[str, Any]) -> float:
        """The NATS wait for a forwarded call: the caller's `timeoutMs` plus a margin (the
        owner answers TIMEOUT itself first), else the default or the method's long wait."""
        settings = self.settings
        default = settings.request_timeout_s
        timeout_ms = params.get("timeoutMs")
        if isinstance(timeout_ms, int) and not isinstance(timeout_ms, bool) and timeout_ms > 0:
            # Plus what the owner may spend riding out a NATS leader election (jsretry.py).
            margin = settings.nats_retry_s + TIMEOUT_MARGIN_S
            return max(default, min(timeout_ms, 86_400_000) / 1000 + margin)
        return spec.reply_timeout(default)


def _rate_limited(conn: Connection) -> RateLimited | None:
    wait = conn.bucket.take(time.monotonic()) if conn.bucket is not None else 0.0
    if not wait:
        return None
    return RateLimited(
        "too many requests on this connection",
        code="CONNECTION_RATE_LIMITED",
        retryAfterMs=math.ceil(wait * 1000),
    )


def _with_request_id(
    block: bytes | None, request_id: str, trace: tracing.Active | None = None
) -> bytes:
    """The connection's header block plus the request id (aisopod.requestlog) and the
    current span's `traceparent` (aisopod.tracing)."""
    line = f"{H_TRACE}: {request_id}\r\n"
    if trace is not None:
        line += f"{tracing.TRACEPARENT}: {trace.traceparent}\r\n"
    tail = (line + "\r\n").encode()
    return block[:-2] + tail if block else b"NATS/1.0\r\n" + tail


def _traced_end(
    conn: Connection,
    call: Call,
    reply: Reply | None,
    started: float,
    request_id: str,
    span: tracing.Span | None,
) -> None:
    status = _status(reply)
    if span is not None:
        span.set("aisopod.status", status)
        span.end(None if status == "ok" else status)
    if requestlog.active():
        _log_request(conn, call, reply, started, request_id)


def _status(reply: Reply | None) -> str:
    """ "ok", or the error code a reply carries."""
    if reply is None:
        return "ok"
    if reply[1] is not None:
        return reply[1].name
    if b'"error":' in reply[0]:  # maybe an owner's error reply, spliced as bytes
        error = orjson.loads(reply[0]).get("error")
        if isinstance(error, dict):
            return str((error.get("data") or {}).get("code") or error.get("code"))
    return "ok"


def _log_request(
    conn: Connection, call: Call, reply: Reply | None, started: float, request_id: str
) -> None:
    requestlog.record(
        "ws",
        call.method,
        principal=conn.principal.id if conn.principal is not None else None,
        status=_status(reply),
        duration_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        connId=conn.conn_id,
    )


def ok_reply(codec: Codec, request_id: RequestId, result: Any) -> Reply:
    return codec.result(request_id, result), None


def error_reply(codec: Codec, request_id: RequestId, error: AisopodError) -> Reply:
    if isinstance(error, InternalError):
        metrics.ERRORS.labels(error.name).inc()
    return codec.error(request_id, error), error


def _forbidden(requirement: Requirement, role: str | None) -> Forbidden:
    if requirement is Requirement.NODE or role == Role.NODE:
        who = "nodes" if requirement is Requirement.NODE else "operators"
        return Forbidden(f"this method is for {who} only", code="UNAUTHORIZED_ROLE")
    if requirement is Requirement.ANY:  # pragma: no cover - ANY always passes
        return Forbidden()
    return Forbidden(
        f"missing scope: {requirement.value}",
        code="MISSING_SCOPE",
        requiredScope=requirement.value,
    )


async def _discard(work: Awaitable[Reply | None]) -> None:
    await work
