"""The control-plane write limit: config set/patch/apply and update.run, 3 per 60 s per
principal (rule `control_writes` of the ratelimit service, key `principal:<id>`).

The ratelimit service owns the counting (shared by every runtime replica). When it cannot
answer, this rule fails open: an operator locked out of the config because the limiter
is down could not fix the limiter either. Each such admission is logged.
"""

from __future__ import annotations

import logging

from aisopod.bus import Bus
from aisopod.contracts.ratelimit import CheckResult, LimitRequest
from aisopod.errors import AisopodError, RateLimited, Unavailable
from aisopod.principal import Principal

log = logging.getLogger("aisopod.runtime.control_writes")

RULE = "control_writes"


class WriteLimiter:
    def __init__(self, bus: Bus, *, rule: str = RULE, timeout: float = 1.0) -> None:
        self.bus = bus
        self.rule = rule
        self.timeout = timeout

    async def admit(self, principal: Principal, what: str) -> None:
        """Count one write by `principal`; RATE_LIMITED when over the limit."""
        request = LimitRequest(rule=self.rule, key=f"principal:{principal.id}")
        try:
            raw = await self.bus.request(
                self.bus.subjects.ratelimit("check"),
                request,
                timeout=self.timeout,
                unavailable="the ratelimit service",
            )
        except Unavailable as exc:
            log.warning(
                "ratelimit unavailable; admitting %s by %s (fail open): %s",
                what,
                principal.id,
                exc.message,
            )
            return
        except AisopodError as exc:
            # e.g. the rule was removed from the config: nothing to enforce.
            log.warning("ratelimit refused the check for %s (%s); admitting", what, exc.message)
            return
        result = CheckResult.model_validate(raw)
        if not result.allowed:
            raise RateLimited(
                f"too many control writes ({result.limit} per window); retry later",
                retryAfterMs=max(result.retry_after_ms, 1),
                rule=self.rule,
            )
