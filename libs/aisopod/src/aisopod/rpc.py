"""Serving RPC methods over NATS: the one wrapper between the wire and every handler.

Owners register handlers from the catalogue; `RpcServer.start` refuses to start when a
method the service owns has no handler, or a handler has no catalogue entry. Each request
is validated against the method's params model, deduplicated by `idempotencyKey` when the
method is side-effecting, run in its own task (a NATS callback must not block the
subscription), and answered with `{"result"}` or `{"error"}`. Handlers raise; only this
module formats errors. Each handler returns its method's result model; with
`validate_replies` on (the test suites), a reply that does not match it is logged as an
error and answered INTERNAL_ERROR (`conformance.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from aisopod import codec, requestlog, tracing
from aisopod.bus import Bus, encode_reply
from aisopod.catalogue import methods_for
from aisopod.catalogue.spec import MethodSpec
from aisopod.compat.natspy import flush_in_order
from aisopod.conformance import checked_result
from aisopod.dedupe import Claimed, Deduper
from aisopod.errors import (
    AisopodError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    Unauthenticated,
    invalid_params_from_validation,
)
from aisopod.principal import (
    H_AUTH_METHOD,
    H_CONN,
    H_DEVICE,
    H_IP,
    H_PRINCIPAL,
    H_ROLE,
    H_SCOPES,
    H_TRACE,
    Principal,
)
from aisopod.services import ServiceName

log = logging.getLogger("aisopod.rpc")

# How long `start` waits for the server to confirm its subscriptions: generous, a loaded
# machine delays the round trip, and a service that cannot get them confirmed fails to start.
START_FLUSH_TIMEOUT_S = 10.0

RPC_REQUESTS = Counter("aisopod_rpc_requests_total", "RPC requests served", ["method", "outcome"])
RPC_SECONDS = Histogram(
    "aisopod_rpc_seconds",
    "RPC handling time",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30),
)


@dataclass(slots=True)
class CallContext:
    """What a handler knows about the call besides its params."""

    method: str
    principal: Principal
    bus: Bus
    headers: Mapping[str, str] = field(default_factory=dict)
    claim: Claimed | None = None
    """Set for a `ClaimsFirst` handler's call with an idempotency key (`claimed`)."""

    async def claimed(self) -> None:
        """Await before the call's first write: the idempotency key is this call's from
        here on (dedupe.py `run_claiming`). A repeat of a finished call raises `Repeated`
        here, one of a call still running CONFLICT; the wrapper answers either."""
        if self.claim is not None:
            await self.claim()


Handler = Callable[[Any, CallContext], Awaitable[Any]]
Replay = Callable[[Any, Any, CallContext], Awaitable[Any]]
"""(stored first result, params, ctx) → the answer to a repeat with the same idempotency key."""


@dataclass(frozen=True, slots=True)
class Replayable:
    """An idempotent handler whose repeats are answered by `replay` from the stored first
    result rather than with it verbatim: for a result that describes something that goes
    on changing (chat.send's run status), so a retry learns where it is now."""

    handler: Handler
    replay: Replay

    async def __call__(self, params: Any, ctx: CallContext) -> Any:
        return await self.handler(params, ctx)


@dataclass(frozen=True, slots=True)
class ClaimsFirst:
    """An idempotent handler that awaits `ctx.claimed()` before anything it writes: its
    reads go out with its idempotency key's claim instead of one round trip after it.
    (Wrapped in `Replayable` as its handler when it replays too.)"""

    handler: Handler

    async def __call__(self, params: Any, ctx: CallContext) -> Any:
        return await self.handler(params, ctx)


def claims_first(handler: Handler) -> bool:
    inner = handler.handler if isinstance(handler, Replayable) else handler
    return isinstance(inner, ClaimsFirst)


RawHandler = Callable[[Any, Mapping[str, str]], Awaitable[Any]]
"""A handler of a non-RPC subject (auth.verify, ratelimit.check): raw JSON in, result out."""


class HandlerMismatch(RuntimeError):
    """The handlers given do not match the catalogue: a service must not start like this."""


def check_handlers(owner: ServiceName, handlers: Mapping[str, Any]) -> list[MethodSpec]:
    """The owner's catalogue entries, or raise if a handler is missing or unknown."""
    owned = {spec.name: spec for spec in methods_for(owner)}
    missing = sorted(set(owned) - set(handlers))
    unknown = sorted(set(handlers) - set(owned))
    if missing or unknown:
        raise HandlerMismatch(
            f"{owner}: handlers missing for {missing or '-'}; not in catalogue for {unknown or '-'}"
        )
    return list(owned.values())


def validate_params(spec: MethodSpec, raw: Any) -> BaseModel:
    """The params model of `spec` built from raw JSON, or INVALID_PARAMS."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("params must be an object")
    try:
        return spec.params.model_validate(raw)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


class RpcServer:
    """Registers a service with nats.micro and serves its catalogue methods and raw subjects."""

    def __init__(
        self,
        bus: Bus,
        *,
        service: ServiceName,
        version: str,
        instance: str,
        deduper: Deduper | None = None,
        max_in_flight: int = 2048,
        validate_replies: bool = False,
    ) -> None:
        self.bus = bus
        self.service = service
        self.version = version
        self.instance = instance
        self.deduper = deduper
        self.validate_replies = validate_replies
        self._micro: Service | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        # prometheus' labels() lookup costs more than a small handler: done once each.
        self._counted: dict[tuple[str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(
        self,
        handlers: Mapping[str, Handler],
        raw: Mapping[str, RawHandler] | None = None,
        *,
        skip: Iterable[str] = (),
    ) -> None:
        """Serve `handlers` (all of this service's catalogue methods except `skip`) and `raw`.

        `skip` names owned methods served elsewhere (ws-gateway answers `connect` itself).
        """
        skipped = set(skip)
        specs = check_handlers(self.service, {**handlers, **dict.fromkeys(skipped)})
        micro = await self.announce()
        for spec in specs:
            if spec.name in skipped:
                continue
            await micro.add_endpoint(
                EndpointConfig(
                    name=spec.name.replace(".", "_"),
                    subject=self.bus.subjects.rpc(spec.name),
                    queue_group=self.service.value,
                    handler=self._rpc_endpoint(spec, handlers[spec.name]),
                    metadata={"method": spec.name, "scope": spec.requirement.value},
                )
            )
        for subject, handler in (raw or {}).items():
            await micro.add_endpoint(
                EndpointConfig(
                    name=subject.replace(".", "_").replace("*", "any").replace(">", "all"),
                    subject=subject,
                    queue_group=self.service.value,
                    handler=self._raw_endpoint(subject, handler),
                )
            )
        # Started means served: the endpoints' SUBs are on the server before this returns
        # (nats-py leaves them in its pending buffer, and its plain flush pings ahead of
        # them), so a request sent from another connection once it returns (readiness, a
        # test) finds a responder rather than "no responders".
        await flush_in_order(self.bus.nc, START_FLUSH_TIMEOUT_S)

    async def announce(self) -> Service:
        """Register with nats.micro (discovery, stats); safe to call twice."""
        if self._micro is None:
            self._micro = await add_service(
                self.bus.nc,
                name=self.service.value,
                version=self.version,
                description=f"aisopod {self.service.value}",
                # The prefix tells deployments sharing one NATS account apart in discovery.
                metadata={"instance": self.instance, "prefix": self.bus.subjects.prefix},
            )
        return self._micro

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _rpc_endpoint(
        self, spec: MethodSpec, handler: Handler
    ) -> Callable[[Request], Awaitable[None]]:
        async def endpoint(request: Request) -> None:
            await self._slots.acquire()
            self._spawn(self._serve_rpc(spec, handler, request))

        return endpoint

    def _raw_endpoint(
        self, subject: str, handler: RawHandler
    ) -> Callable[[Request], Awaitable[None]]:
        async def endpoint(request: Request) -> None:
            await self._slots.acquire()
            self._spawn(self._serve_raw(subject, handler, request))

        return endpoint

    async def _serve_rpc(self, spec: MethodSpec, handler: Handler, request: Request) -> None:
        started = time.perf_counter()
        headers = request.headers or {}
        stored: Awaitable[None] | None = None
        principal: Principal | None = None
        # This task's own context: the calls its handler makes carry the same request id,
        # and (tracing on) are children of this call's span.
        request_id = headers.get(H_TRACE) or None
        requestlog.current_request_id.set(request_id)
        span = _span(spec.name, headers, request_id) if tracing.ON else None
        try:
            try:
                principal = _principal(headers)
                if principal is None:
                    raise Unauthenticated("request carries no principal")
                params = validate_params(spec, _json(request.data))
                ctx = CallContext(spec.name, principal, self.bus, headers)
                key = getattr(params, "idempotency_key", None) if spec.idempotent else None

                async def run() -> Any:
                    return self._wire_result(spec, await handler(params, ctx))

                if key and self.deduper is not None:
                    replay = handler.replay if isinstance(handler, Replayable) else None

                    async def replayed(first: Any) -> Any:
                        assert replay is not None
                        return self._wire_result(spec, await replay(first, params, ctx))

                    dedupe_key = f"{spec.name}|{principal.id}|{key}"
                    if claims_first(handler):

                        async def run_claimed(claim: Claimed) -> Any:
                            ctx.claim = claim
                            return await run()

                        result, stored = await self.deduper.run_claiming(
                            dedupe_key, run_claimed, on_replay=replayed if replay else None
                        )
                    else:
                        result, stored = await self.deduper.run_then_store(
                            dedupe_key, run, on_replay=replayed if replay else None
                        )
                else:
                    result = await run()
                reply = encode_reply(result)
                outcome = "ok"
            except AisopodError as exc:
                reply, outcome = encode_reply(error=exc), exc.name
            except Exception:
                log.exception("handler of %s failed", spec.name)
                reply, outcome = encode_reply(error=InternalError()), "INTERNAL_ERROR"
            await request.respond(reply)
            if stored is not None:  # the dedupe entry, sent before the reply (dedupe.py)
                try:
                    await stored
                except Exception:
                    log.warning("%s: the idempotency entry was not stored", spec.name)
        except Exception:  # the reply itself failed (NATS down): the caller times out
            log.warning("could not reply to %s", spec.name, exc_info=True)
            outcome = "NO_REPLY"
        finally:
            self._slots.release()
        counted = self._counted.get((spec.name, outcome))
        if counted is None:
            counted = self._counted[spec.name, outcome] = RPC_REQUESTS.labels(spec.name, outcome)
        counted.inc()
        timed = self._timed.get(spec.name)
        if timed is None:
            timed = self._timed[spec.name] = RPC_SECONDS.labels(spec.name)
        requestlog.record(
            "rpc",
            spec.name,
            principal=principal.id if principal is not None else None,
            status=outcome,
            duration_ms=(time.perf_counter() - started) * 1000,
            request_id=request_id,
        )
        timed.observe(time.perf_counter() - started)
        if span is not None:
            _end(span, outcome)

    def _wire_result(self, spec: MethodSpec, value: Any) -> Any:
        if self.validate_replies:
            return checked_result(spec, value)  # raises: logged, INTERNAL_ERROR
        return codec.to_wire(value)

    async def _serve_raw(self, subject: str, handler: RawHandler, request: Request) -> None:
        started = time.perf_counter()
        headers = request.headers or {}
        request_id = headers.get(H_TRACE) or None
        requestlog.current_request_id.set(request_id)
        span = _span(subject, headers, request_id) if tracing.ON else None
        outcome = "ok"
        try:
            try:
                reply = encode_reply(await handler(_json(request.data), headers))
            except AisopodError as exc:
                reply, outcome = encode_reply(error=exc), exc.name
            except Exception:
                log.exception("handler of %s failed", subject)
                reply, outcome = encode_reply(error=InternalError()), "INTERNAL_ERROR"
            await request.respond(reply)
        except Exception:
            log.warning("could not reply on %s", subject, exc_info=True)
            outcome = "NO_REPLY"
        finally:
            self._slots.release()
        requestlog.record(
            "rpc",
            request.subject,
            principal=headers.get(H_PRINCIPAL),
            status=outcome,
            duration_ms=(time.perf_counter() - started) * 1000,
            request_id=request_id,
        )
        if span is not None:
            _end(span, outcome)

    async def drain(self, timeout: float) -> None:
        """Stop taking requests, then wait (bounded) for those in flight."""
        if self._micro is not None:
            micro, self._micro = self._micro, None
            # micro's stop drains each subscription, which can wait on a queue join that
            # never completes; unanswered discovery pings are harmless, a hung stop is not.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(micro.stop(), 2.0)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def stop(self) -> None:
        await self.drain(0)
        for task in list(self._tasks):
            task.cancel()


_IDENTITY = (H_PRINCIPAL, H_ROLE, H_SCOPES, H_AUTH_METHOD, H_CONN, H_IP, H_DEVICE, H_TRACE)
_PRINCIPALS: dict[tuple[str | None, ...], Principal | None] = {}
_PRINCIPALS_MAX = 4096


def _principal(headers: Mapping[str, str]) -> Principal | None:
    """`Principal.from_headers`, remembered: an edge sends the same identity headers with
    every call of a connection, and a Principal is immutable."""
    key = tuple(map(headers.get, _IDENTITY))
    try:
        return _PRINCIPALS[key]
    except KeyError:
        pass
    principal = Principal.from_headers(dict(headers))
    if len(_PRINCIPALS) >= _PRINCIPALS_MAX:
        _PRINCIPALS.clear()
    _PRINCIPALS[key] = principal
    return principal


def _span(name: str, headers: Mapping[str, str], request_id: str | None) -> tracing.Span | None:
    """This call's span, the child of the caller's (its `traceparent` header), made the
    current one of the serving task."""
    attributes: dict[str, str] = {"rpc.system": "nats", "rpc.method": name}
    if request_id:
        attributes["aisopod.request_id"] = request_id
    span = tracing.start(name, parent=headers.get(tracing.TRACEPARENT), attributes=attributes)
    tracing.use(span)
    return span


def _end(span: tracing.Span, outcome: str) -> None:
    span.set("aisopod.status", outcome)
    span.end(None if outcome == "ok" else outcome)


def _json(data: bytes) -> Any:
    if not data:
        return {}
    try:
        return codec.loads(data)
    except ValueError:
        raise InvalidRequest("request body is not JSON") from None
