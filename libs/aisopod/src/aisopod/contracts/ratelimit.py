"""`<prefix>.ratelimit.check|fail|reset`: other services ask the ratelimit service.

- `check` `{rule, key, cost?}` → `CheckResult`: counts toward `rule` and says whether
  admitted (a locked key is never admitted).
- `fail` `{rule, key}` → `CheckResult`: records a failure (auth failures, hook token
  failures); exceeding the rule's limit starts its lockout.
- `reset` `{rule, key}` → `{ok}`: forget the key (e.g. after a successful auth).
Keys are opaque strings built by the caller: `ip:<addr>`, `principal:<id>`, `device:<id>`.
"""

from __future__ import annotations

from pydantic import Field

from aisopod.wire import Result, WireModel


class LimitRequest(WireModel):
    rule: str
    key: str
    cost: int = Field(1, ge=1, le=1000)


class CheckResult(Result):
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int = Field(description="ms until the window frees a slot")
    retry_after_ms: int = Field(0, description="0 when allowed")
    locked: bool = False
