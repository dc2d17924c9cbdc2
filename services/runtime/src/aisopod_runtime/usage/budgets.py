"""Monthly spend counters and the budgets that read them (KV `usage`).

Key `<YYYY-MM>.agent.<agentId>` and `<YYYY-MM>.token.<tokenId>` (the month is UTC; the
bucket keeps keys 62 days): `{tokens, costNanoUsd, runs}`. Every runtime adds each run it
concludes to the counters of its agent and, when an API token started it, of that token,
whether or not a budget is configured (so a budget set mid-month sees the month's spend).

Exact across replicas: an addition is a compare-and-set on the revision it read
(`Nats-Expected-Last-Subject-Sequence`); a concurrent writer makes it read again and
retry, so no addition is lost (it first tries the value this process last wrote: one
round trip when no other replica wrote since). Each addition carries `Nats-Msg-Id:
<runId>.<key>`: when its ack is lost and it is sent again (here or by `jsretry`), the
stream drops the repeat (duplicate window: two minutes), so none is counted twice.
Admission reads the counter from the stream's leader (not a direct get a follower may
answer late).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from nats.js.errors import APIError, NotFoundError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.usage import BudgetState
from aisopod.compat.natspy import kv_bucket, kv_jetstream, kv_subject
from aisopod.config.sections.usage import Budget, Budgets
from aisopod.errors import Forbidden
from aisopod.principal import Principal
from aisopod_runtime.usage.tally import month_end, month_of, usd

log = logging.getLogger("aisopod.runtime.usage")

Scope = Literal["agent", "token"]
_CAS_ATTEMPTS = 32
_KNOWN_MAX = 4096
_WRONG_LAST_SEQUENCE = (10071, 10164)


@dataclass(frozen=True, slots=True)
class Spend:
    tokens: int = 0
    cost_nano: int = 0
    runs: int = 0


def token_id(principal_id: str) -> str | None:
    """The API token id of a principal (`token:<id>`), or None for anyone else."""
    return principal_id.removeprefix("token:") if principal_id.startswith("token:") else None


def counter_key(month: str, scope: Scope, ident: str) -> str:
    return f"{month}.{scope}.{ident}"


class BudgetBook:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        # The last value this process wrote to each counter: an addition first tries it
        # (one round trip) and reads the leader only when another replica wrote since.
        self._known: dict[str, tuple[Spend, int]] = {}

    # -- reading --------------------------------------------------------------------------
    async def spend(self, key: str) -> tuple[Spend, int]:
        """The counter and its revision (0: none yet), read from the stream leader."""
        js = kv_jetstream(self.kv)
        try:
            msg = await js.get_msg(
                f"KV_{kv_bucket(self.kv)}", subject=kv_subject(self.kv, key), direct=False
            )
        except NotFoundError:
            return Spend(), 0
        if msg.headers and msg.headers.get("KV-Operation") in ("DEL", "PURGE"):
            return Spend(), int(msg.seq or 0)
        raw = codec.loads(msg.data or b"{}")
        spend = Spend(
            int(raw.get("tokens") or 0), int(raw.get("costNanoUsd") or 0), int(raw.get("runs") or 0)
        )
        return spend, int(msg.seq or 0)

    async def states(self, budgets: Budgets, now_ms: int) -> list[BudgetState]:
        """Every configured budget with its month's spend."""
        wanted: list[tuple[Scope, str, Budget]] = [
            *(("agent", ident, b) for ident, b in sorted(budgets.agents.items())),
            *(("token", ident, b) for ident, b in sorted(budgets.tokens.items())),
        ]
        month = month_of(now_ms)
        spends = await asyncio.gather(
            *(self.spend(counter_key(month, scope, ident)) for scope, ident, _ in wanted)
        )
        return [
            _state(scope, ident, budget, spend, month, now_ms)
            for (scope, ident, budget), (spend, _) in zip(wanted, spends, strict=True)
        ]

    async def admit(
        self, budgets: Budgets, agent_id: str, principal: Principal, now_ms: int
    ) -> None:
        """Refuse a new run when its agent's or its token's budget for this month is spent."""
        checks: list[tuple[Scope, str, Budget]] = []
        if agent_id in budgets.agents:
            checks.append(("agent", agent_id, budgets.agents[agent_id]))
        token = token_id(principal.id)
        if token is not None and token in budgets.tokens:
            checks.append(("token", token, budgets.tokens[token]))
        if not checks:
            return
        month = month_of(now_ms)
        spends = await asyncio.gather(
            *(self.spend(counter_key(month, scope, ident)) for scope, ident, _ in checks)
        )
        for (scope, ident, budget), (spend, _) in zip(checks, spends, strict=True):
            state = _state(scope, ident, budget, spend, month, now_ms)
            if state.exhausted:
                raise Forbidden(
                    f"the monthly budget of {scope} {ident!r} is spent ({_spent_text(state)}); "
                    f"new runs are refused until the month ends (UTC)",
                    code="BUDGET_EXHAUSTED",
                    data=state.wire(),
                )

    # -- writing --------------------------------------------------------------------------
    async def add(self, key: str, charge_id: str, tokens: int, cost_nano: int) -> None:
        """Add one run to a counter, exactly once (module doc)."""
        js = kv_jetstream(self.kv)
        subject = kv_subject(self.kv, key)
        known = self._known.pop(key, None)
        for _ in range(_CAS_ATTEMPTS):
            spend, revision = known if known is not None else await self.spend(key)
            known = None
            added = Spend(spend.tokens + tokens, spend.cost_nano + cost_nano, spend.runs + 1)
            value = {"tokens": added.tokens, "costNanoUsd": added.cost_nano, "runs": added.runs}
            headers = {
                "Nats-Expected-Last-Subject-Sequence": str(revision),
                "Nats-Msg-Id": f"{charge_id}.{key}",
            }
            try:
                ack = await js.publish(subject, codec.dumps(value), headers=headers)
            except APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE:
                    continue
                raise
            if not ack.duplicate:  # a repeat's ack names the first write, not this value
                if len(self._known) >= _KNOWN_MAX:
                    self._known.clear()
                self._known[key] = (added, ack.seq)
            return
        log.error("usage counter %s: gave up after %d conflicting writes", key, _CAS_ATTEMPTS)


def _state(
    scope: Scope, ident: str, budget: Budget, spend: Spend, month: str, now_ms: int
) -> BudgetState:
    cost = usd(spend.cost_nano)
    exhausted = (budget.monthly_tokens is not None and spend.tokens >= budget.monthly_tokens) or (
        budget.monthly_cost_usd is not None and cost >= budget.monthly_cost_usd
    )
    return BudgetState(
        scope=scope,
        id=ident,
        month=month,
        spent_tokens=spend.tokens,
        spent_cost_usd=cost,
        limit_tokens=budget.monthly_tokens,
        limit_cost_usd=budget.monthly_cost_usd,
        exhausted=exhausted,
        resets_at=month_end(now_ms),
    )


def _spent_text(state: BudgetState) -> str:
    parts = []
    if state.limit_tokens is not None:
        parts.append(f"{state.spent_tokens} of {state.limit_tokens} tokens")
    if state.limit_cost_usd is not None:
        parts.append(f"${state.spent_cost_usd:.4f} of ${state.limit_cost_usd:.2f}")
    return ", ".join(parts)
