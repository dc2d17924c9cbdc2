"""The outermost ASGI layer: request id, security headers, edge proof, who may call, body
limits, last-resort errors.

Pure ASGI (no BaseHTTPMiddleware: it costs a task and a copy per request). Every response
gets `X-Request-Id` (the client's when it is sane, else a fresh one),
`X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`. Request bodies are
read here, against the route's limit (413 beyond it, from `Content-Length` at once or
while counting a chunked body), and handed on in `scope["aisopod.body"]` so the fast path
never reads them twice; `receive` replays them for everyone else.

Before any of that reads the request, every request but the probes (`/health`, `/ready`,
`/metrics`) must carry the edge proof (aisopod/edgeproof.py): without it, 403
`EDGE_PROOF_MISSING`, and nothing of the request (identity, `X-Forwarded-For`) is
believed. With it, the client IP is walked from `X-Forwarded-For` (`scope["aisopod.client_ip"]`)
and the gate (gate.py) asks ratelimit and auth over NATS; the verified caller goes into
`scope["aisopod.caller"]` (identity.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aisopod import requestlog, tracing
from aisopod.edgeproof import PROBE_PATHS, REFUSAL, EdgeProof, client_address
from aisopod.errors import AisopodError, Forbidden, InvalidRequest
from aisopod.requestid import request_id as request_id_of
from aisopod_http_api.errors import PayloadTooLarge
from aisopod_http_api.gate import Gate, Refusal, abandon
from aisopod_http_api.identity import CALLER_KEY
from aisopod_http_api.rawio import send_error

log = logging.getLogger("aisopod.http_api")

MIB = 1024 * 1024
BODY_KEY = "aisopod.body"
REQUEST_ID_KEY = "aisopod.request_id"
CLIENT_IP_KEY = "aisopod.client_ip"

_SECURITY = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# Traefik's mark on a path it refused for an encoded character (launcher/traefik.py,
# router `api-encoded`); clients' own copies are stripped at the edge.
_EDGE_REFUSED = b"x-aisopod-edge-refused"
# Response headers a route asks for (a list of (name, value) pairs in the scope).
EXTRA_HEADERS_KEY = "aisopod.extra_headers"


# How much of an over-limit body is read (and discarded) so the 413 reaches the client.
DRAIN_CAP = 64 * MIB


class BodyLimits:
    """Per-route request body limits (docs/protocol/http.md); `/hooks`: `hooks.maxBodyBytes`."""

    def __init__(self, hooks_limit: Callable[[], int]) -> None:
        self._hooks_limit = hooks_limit

    def for_path(self, path: str) -> int:
        if path.startswith("/v1/responses"):
            return 20 * MIB
        if path.startswith("/v1/"):
            return 1 * MIB
        if path.startswith("/hooks"):
            return self._hooks_limit()
        if path.startswith("/tools"):
            return 2 * MIB
        return 1 * MIB


class EdgeMiddleware:
    """`fast` maps exact (method, path) pairs to raw ASGI endpoints served right here,
    before FastAPI's middleware stack and router (the proxy fast path); the same endpoints
    are also routes of the app, which answers every other method (405) and documents them.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: BodyLimits,
        *,
        proof: EdgeProof,
        gate: Gate,
        trusted_proxies: Callable[[], tuple[str, ...]],
        fast: Mapping[tuple[str, str], ASGIApp] | None = None,
        refuse: Callable[[Scope], AisopodError | None] | None = None,
        wrote: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.proof = proof
        self.gate = gate
        self.trusted_proxies = trusted_proxies
        self.fast = fast or {}
        # Asked first: an error to answer instead of serving at all (hostguard.py).
        self.refuse = refuse
        # Told when a request that may have written ends (the edge reads' read-your-writes).
        self.wrote = wrote

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"]).decode()
        scope[REQUEST_ID_KEY] = request_id
        # The bus calls made for this request carry its id (aisopod.requestlog).
        requestlog.current_request_id.set(request_id)
        span = _span(scope, request_id) if tracing.ON else None
        extra = [(b"x-request-id", request_id.encode()), *_SECURITY]
        started = False
        status = 0
        began = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                routed = scope.get(EXTRA_HEADERS_KEY, ())  # e.g. agentoptions' report
                message["headers"] = [*message.get("headers", ()), *extra, *routed]
            await send(message)

        try:
            await self._serve(scope, receive, send_with_headers, lambda: started)
        finally:
            caller = scope.get(CALLER_KEY)  # who auth said it was; no header is believed
            if caller is not None and self.wrote is not None and scope["method"] not in _READS:
                self.wrote(caller.id)
            requestlog.record(
                "http",
                f"{scope['method']} {scope['path']}",
                principal=caller.id if caller is not None else None,
                status=status or "no response",
                duration_ms=(time.perf_counter() - began) * 1000,
                request_id=request_id,
            )
            if span is not None:
                _end(span, scope, status)

    async def _serve(
        self, scope: Scope, receive: Receive, send_with_headers: Send, started: Callable[[], bool]
    ) -> None:
        request_id: str = scope[REQUEST_ID_KEY]
        admission: asyncio.Future[Refusal | None] | None = None
        try:
            if scope["path"] not in PROBE_PATHS:
                # The proof before anything else is read. ratelimit and auth: while a body
                # arrives, answered once it is read (a proxy still sending a body would see
                # a reset instead of an early answer).
                ip = self._prove(scope)
                if self._admit_kept(scope, ip, request_id):
                    pass  # decided from the gate's caches: nothing to ask, no task to wait
                elif scope["method"] in _BODY_METHODS:
                    admission = asyncio.ensure_future(self._admit(scope, ip, request_id))
                elif (refused := await self._admit(scope, ip, request_id)) is not None:
                    await _send_refusal(send_with_headers, refused)
                    return
            if scope["method"] in _BODY_METHODS:
                body = await _read_body(scope, receive, self.limits.for_path(scope["path"]))
                scope[BODY_KEY] = body
                receive = _replay(body, receive)
            if admission is not None:
                refused = await admission
                admission = None
                if refused is not None:
                    await _send_refusal(send_with_headers, refused)
                    return
            # After the body (a proxy that is still sending it would see a reset, not
            # the answer), before any route.
            if any(name == _EDGE_REFUSED for name, _ in scope["headers"]):
                raise InvalidRequest(
                    "the path holds an encoded character the gateway refuses (%2F, %5C, %00, "
                    "%3B, %25, %3F, %23); only a model id in GET /v1/models/{id} may hold %2F",
                    openaiCode="invalid_path",
                )
            refusal = self.refuse(scope) if self.refuse is not None else None
            if refusal is not None:
                raise refusal
            target = self.fast.get((scope["method"], scope["path"]), self.app)
            await target(scope, receive, send_with_headers)
        except AisopodError as exc:  # body limits; anything a raw route let through
            if started():
                raise
            await send_error(send_with_headers, scope["path"], exc)
        except Exception:
            log.exception("unhandled error on %s", scope.get("path"))
            if not started():
                await send_error(send_with_headers, scope["path"], AisopodError("internal error"))
        finally:
            if admission is not None:  # the body failed (413, a disconnect) first
                abandon(admission)

    def _prove(self, scope: Scope) -> str:
        """The client IP of a request that carries the edge proof; Forbidden otherwise."""
        proven, forwarded_for = self.proof.check(scope["headers"])
        if not proven:
            raise Forbidden(REFUSAL, code="EDGE_PROOF_MISSING")
        peer = scope["client"][0] if scope.get("client") else ""
        ip = client_address(peer, forwarded_for, self.trusted_proxies(), proven=True)
        scope[CLIENT_IP_KEY] = ip
        return ip

    def _admit_kept(self, scope: Scope, ip: str, request_id: str) -> bool:
        """Admitted from the gate's caches alone (gate.py, `admit_kept`); the caller goes
        into the scope. False: ratelimit or auth must be asked."""
        authorization, origin = _credentials(scope)
        caller = self.gate.admit_kept(scope["path"], ip, authorization, origin, request_id)
        if caller is False:
            return False
        if caller is not None:
            scope[CALLER_KEY] = caller
        return True

    async def _admit(self, scope: Scope, ip: str, request_id: str) -> Refusal | None:
        """ratelimit and auth over NATS (gate.py); the caller goes into the scope."""
        authorization, origin = _credentials(scope)
        caller, refusal = await self.gate.admit(
            scope["path"], ip, authorization, origin, request_id
        )
        if caller is not None:
            scope[CALLER_KEY] = caller
        return refusal


def _credentials(scope: Scope) -> tuple[str | None, str | None]:
    """The request's `Authorization` and `Origin` headers."""
    authorization = origin = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"origin":
            origin = value.decode("latin-1")
    return authorization, origin


def _span(scope: Scope, request_id: str) -> tracing.Span | None:
    """The request's span (aisopod.tracing): the child of the `traceparent` it came with
    (Traefik's span when its tracing is on, else the client's), current for the request."""
    span = tracing.start(
        f"{scope['method']} {scope['path']}",
        parent=tracing.from_headers(scope["headers"]),
        attributes={
            "http.request.method": scope["method"],
            "url.path": scope["path"],
            "aisopod.request_id": request_id,
        },
    )
    tracing.use(span)
    return span


def _end(span: tracing.Span, scope: Scope, status: int) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None)
    if isinstance(template, str) and template != scope["path"]:
        span.rename(f"{scope['method']} {template}")  # /v1/models/{model_id}, not each id
        span.set("http.route", template)
    if status:
        span.set("http.response.status_code", status)
    span.end("no response" if not status else f"HTTP {status}" if status >= 500 else None)


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    headers = [*refusal.headers, (b"content-length", str(len(refusal.body)).encode())]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    ended = False

    async def tracked() -> Message:
        nonlocal ended
        message = await receive()
        ended = message["type"] != "http.request" or not message.get("more_body", False)
        return message

    try:
        return await _read_limited(scope, tracked, limit)
    except PayloadTooLarge:
        # Traefik's fast proxy sends the whole body before it reads a response: answered
        # and closed early, it reports 502 instead of our 413. Reading the rest first lets
        # the 413 through; a body declared beyond the drain cap is not worth reading.
        if not ended and _declared_length(scope) <= DRAIN_CAP:
            await _drain(receive, DRAIN_CAP)
        raise


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _drain(receive: Receive, cap: int) -> None:
    seen = 0
    while seen <= cap:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        seen += len(message.get("body", b""))


async def _read_limited(scope: Scope, receive: Receive, limit: int) -> bytes:
    if _declared_length(scope) > limit:
        raise PayloadTooLarge(f"request body over this route's limit of {limit} bytes")
    first = await receive()
    if first["type"] != "http.request":
        return b""
    body = first.get("body", b"")
    if not first.get("more_body", False):
        if len(body) > limit:
            raise PayloadTooLarge(f"request body over this route's limit of {limit} bytes")
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over this route's limit of {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then the real `receive` (so a disconnect still arrives)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
