"""`<prefix>.ratelimit.check|fail|reset|status`: other services ask the ratelimit service.

- `check` `{rule, key, cost?}` → `CheckResult`: counts toward `rule` and says whether
  admitted (a locked key is never admitted).
- `fail` `{rule, key}` → `CheckResult`: records a failure (auth failures, hook token
  failures); the `limit`-th failure in the window starts the rule's lockout, and
  `allowed` says whether another attempt may be made now.
- `reset` `{rule, key}` → `{ok}`: forget the key (e.g. after a successful auth).
- `status` `{rule, key}` → `CheckResult`: whether the key would be admitted now, without
  counting (`cost` ignored): auth asks this before verifying, so a locked-out client is
  refused without its guess being checked.
- `edge` `{path, clientIp}` → `EdgeCheckResult`: the per-route limit of an edge request
  (the route classes of `limits.routes`, keyed by the client IP like the route's rule
  says), asked by http-api for every API request and by ws-gateway for every upgrade;
  `counted` false when no route class covers the path; `configRevision` the config KV
  revision of the rules that decided (so a caller may reuse an `exempt` answer while it
  runs that revision itself). The caller must have proven the client IP
  (aisopod/edgeproof.py).
Keys are opaque strings built by the caller: `ip:<addr>`, `principal:<id>`, `device:<id>`
(`ip:` keys are normalised: IPv4-mapped IPv6 to IPv4, IPv6 to its configured prefix).
An unknown rule is INVALID_PARAMS. Semantics (docs/ratelimit.md): a rule admits `limit`
units per sliding `window`; a locked key is refused for `lockout_s` whatever its window.
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


class ResetResult(Result):
    ok: bool


class EdgeCheckRequest(WireModel):
    path: str = Field(min_length=1, max_length=8192)
    client_ip: str = Field(min_length=1, max_length=100)


class EdgeCheckResult(CheckResult):
    counted: bool = Field(True, description="false: no route class covers the path")
    reason: str = Field("ok", description="ok | exempt | limit | lockout | unreachable")
    config_revision: int | None = Field(
        None,
        description="the config KV revision of the document whose rules took this decision; "
        "null when not known here (decided by another replica, or its rules lag its config)",
    )
