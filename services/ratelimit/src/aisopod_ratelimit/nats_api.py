"""`<prefix>.ratelimit.check|fail|reset|status|edge` for other services
(contracts/ratelimit.py).

`check|fail|reset|status` are served through `host.rpc.start({}, raw=…)`. `edge` (asked
for every API request and upgrade) is answered from the NATS reader (`EdgeResponder`,
aisopod.compat.natspy): a key this replica owns (or an exempt one, which needs no state)
is decided and its reply written before the next message is read, with no task in between;
a key another replica owns goes the ordinary way (a task that forwards to the owner). The
queue group spreads callers over the replicas either way. A reply decided here carries the
config revision of the rules that took it (`configRevision`), a forwarded one does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from aisopod import codec, requestlog
from aisopod.bus import encode_reply
from aisopod.contracts.ratelimit import (
    CheckResult,
    EdgeCheckRequest,
    EdgeCheckResult,
    LimitRequest,
    ResetResult,
)
from aisopod.errors import (
    AisopodError,
    InternalError,
    InvalidParams,
    invalid_params_from_validation,
)
from aisopod.rpc import RawHandler
from aisopod_ratelimit.limiter import Decision
from aisopod_ratelimit.ruleset import Route
from aisopod_ratelimit.service import RateLimitService

log = logging.getLogger("aisopod.ratelimit.nats")

EDGE_QUEUE = "q"  # the queue group nats.micro gives the other endpoints


Parsed = TypeVar("Parsed", LimitRequest, EdgeCheckRequest)


def _validated(model: type[Parsed], payload: Any, shape: str) -> Parsed:
    if not isinstance(payload, dict):
        raise InvalidParams(f"expected {shape}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


def _request(payload: Any) -> LimitRequest:
    return _validated(LimitRequest, payload, "{rule, key, cost?}")


def _result(decision: Decision) -> CheckResult:
    return CheckResult(
        allowed=decision.allowed,
        limit=decision.limit,
        remaining=decision.remaining,
        reset_ms=decision.reset_ms,
        retry_after_ms=decision.retry_after_ms,
        locked=decision.locked,
    )


def handlers(service: RateLimitService) -> dict[str, RawHandler]:
    subjects = service.host.bus.subjects

    def limit_op(op: str) -> RawHandler:
        async def handle(payload: Any, _headers: Mapping[str, str]) -> CheckResult:
            request = _request(payload)
            rule = service.rule(request.rule)
            return _result(await service.decide(op, rule, request.key, request.cost))

        return handle

    async def reset(payload: Any, _headers: Mapping[str, str]) -> ResetResult:
        request = _request(payload)
        decision = await service.decide("reset", service.rule(request.rule), request.key)
        return ResetResult(ok=decision.allowed)

    return {
        subjects.ratelimit("check"): limit_op("check"),
        subjects.ratelimit("fail"): limit_op("fail"),
        subjects.ratelimit("status"): limit_op("status"),
        subjects.ratelimit("reset"): reset,
    }


UNCOUNTED = EdgeCheckResult(allowed=True, limit=0, remaining=0, reset_ms=0, counted=False)


def edge_request(payload: Any) -> EdgeCheckRequest:
    return _validated(EdgeCheckRequest, payload, "{path, clientIp}")


def edge_result(decision: Decision, config_revision: int | None = None) -> EdgeCheckResult:
    """The edge answer; `config_revision` only for a decision this replica's rules took
    (a forwarded one was taken by the owner's, whose revision is not known here)."""
    return EdgeCheckResult(
        allowed=decision.allowed,
        limit=decision.limit,
        remaining=decision.remaining,
        reset_ms=decision.reset_ms,
        retry_after_ms=decision.retry_after_ms,
        locked=decision.locked,
        reason=decision.reason,
        config_revision=config_revision,
    )


class EdgeResponder:
    """`ratelimit.edge` from the NATS reader: (reply subject, request, headers) → the
    reply now, or None after handing the request to a task (the key's owner is another
    replica, so the answer needs a NATS round trip to it)."""

    def __init__(self, service: RateLimitService) -> None:
        self.service = service
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, reply: bytes, data: bytes, headers: bytes | None) -> bytes | None:
        service = self.service
        started = time.perf_counter()
        try:
            request = edge_request(codec.loads(data) if data else None)
            route = service.ruleset.route(request.path.partition("?")[0])
            if route is None:
                return encode_reply(UNCOUNTED)
            key = service.ruleset.edge_key(route, request.client_ip)
            decision = service.decide_here("check", route.rule, key)
            if decision is None:
                self._spawn(self._forwarded(reply, route, key))
                return None
            answer = encode_reply(edge_result(decision, service.config_revision()))
            outcome = "ok"
        except AisopodError as exc:
            answer, outcome = encode_reply(error=exc), exc.name
        except ValueError:
            answer = encode_reply(error=InvalidParams("the request is not JSON"))
            outcome = "INVALID_PARAMS"
        except Exception:
            log.exception("ratelimit.edge failed")
            answer, outcome = encode_reply(error=InternalError()), "INTERNAL_ERROR"
        if requestlog.active():
            subject = service.host.bus.subjects.ratelimit("edge")
            requestlog.record(
                "rpc",
                subject,
                principal=None,
                status=outcome,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_id=None,
            )
        return answer

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forwarded(self, reply: bytes, route: Route, key: str) -> None:
        try:
            decision = await self.service.decide("check", route.rule, key, normalised=True)
            answer = encode_reply(edge_result(decision))
        except AisopodError as exc:
            answer = encode_reply(error=exc)
        except Exception:
            log.exception("ratelimit.edge failed")
            answer = encode_reply(error=InternalError())
        try:
            await self.service.host.bus.nc.publish(reply.decode(), answer)
        except Exception:
            log.warning("could not reply on ratelimit.edge", exc_info=True)
