"""`<prefix>.ratelimit.check|fail|reset|status|edge` for other services
(contracts/ratelimit.py).

Served through `host.rpc.start({}, raw=…)`: the queue group spreads callers over the
replicas, and whichever gets a request asks the key's owner (service.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from aisopod.contracts.ratelimit import (
    CheckResult,
    EdgeCheckRequest,
    EdgeCheckResult,
    LimitRequest,
    ResetResult,
)
from aisopod.errors import InvalidParams, invalid_params_from_validation
from aisopod.rpc import RawHandler
from aisopod_ratelimit.limiter import Decision
from aisopod_ratelimit.service import RateLimitService


def _request(payload: Any) -> LimitRequest:
    if not isinstance(payload, dict):
        raise InvalidParams("expected {rule, key, cost?}")
    try:
        return LimitRequest.model_validate(payload)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


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

    async def edge(payload: Any, _headers: Mapping[str, str]) -> EdgeCheckResult:
        # The route class of the path picks the rule.
        if not isinstance(payload, dict):
            raise InvalidParams("expected {path, clientIp}")
        try:
            request = EdgeCheckRequest.model_validate(payload)
        except ValidationError as exc:
            raise invalid_params_from_validation(exc.errors()) from None
        ruleset = service.ruleset
        route = ruleset.route(request.path.partition("?")[0])
        if route is None:
            return EdgeCheckResult(allowed=True, limit=0, remaining=0, reset_ms=0, counted=False)
        key = ruleset.edge_key(route, request.client_ip)
        decision = await service.decide("check", route.rule, key, normalised=True)
        return EdgeCheckResult(
            allowed=decision.allowed,
            limit=decision.limit,
            remaining=decision.remaining,
            reset_ms=decision.reset_ms,
            retry_after_ms=decision.retry_after_ms,
            locked=decision.locked,
            reason=decision.reason,
        )

    async def reset(payload: Any, _headers: Mapping[str, str]) -> ResetResult:
        request = _request(payload)
        decision = await service.decide("reset", service.rule(request.rule), request.key)
        return ResetResult(ok=decision.allowed)

    return {
        subjects.ratelimit("check"): limit_op("check"),
        subjects.ratelimit("fail"): limit_op("fail"),
        subjects.ratelimit("status"): limit_op("status"),
        subjects.ratelimit("reset"): reset,
        subjects.ratelimit("edge"): edge,
    }
