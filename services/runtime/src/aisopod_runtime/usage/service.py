"""Usage on the run path (admission against budgets, the charge when a run concludes) and
the methods that read it back: `usage.status`, `usage.cost`, `sessions.usage`, `usage.sessions`.

The run manager calls `admit` while it submits a run and `charge` while it concludes
one, beside the other conclusion steps, so that once `agent.wait` returns the run is in
the ledger and the counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from aisopod.catalogue.usage import (
    SessionsUsageLogsParams,
    SessionsUsageLogsResult,
    SessionsUsageParams,
    SessionsUsageResult,
    SessionsUsageSeriesParams,
    SessionsUsageSeriesResult,
    UsageCostResult,
    UsageSessionsParams,
    UsageSessionsResult,
    UsageStatusResult,
    UsageSummary,
    UsageWindowParams,
)
from aisopod.errors import Forbidden, NotFound
from aisopod.host import ServiceHost
from aisopod.principal import Principal
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.chat import history_view
from aisopod_runtime.providers import Usage
from aisopod_runtime.usage import metrics
from aisopod_runtime.usage.budgets import BudgetBook, counter_key, token_id
from aisopod_runtime.usage.ledger import UsageLedger, shared_ledger
from aisopod_runtime.usage.rollup import StaleRollup
from aisopod_runtime.usage.tally import (
    bucket_for,
    cost_nano_usd,
    costs,
    month_of,
    per_session,
    price_of,
    run_costs,
    run_points,
    series,
    session_rows,
    summary_fields,
    totals,
    usd,
    window,
)

if TYPE_CHECKING:
    from aisopod_runtime.service import RuntimeService

log = logging.getLogger("aisopod.runtime.usage")


def now_ms() -> int:
    return int(time.time() * 1000)


async def usage_summary(ledger: UsageLedger) -> UsageSummary:
    """The last 30 days, as `status` shows them."""
    since, until = window(None, None, now_ms())
    records = await ledger.read(since, until)
    return UsageSummary(**summary_fields(records, since, until))


class UsageService:
    def __init__(self, host: ServiceHost, ledger: UsageLedger, book: BudgetBook) -> None:
        self.host = host
        self.ledger = ledger
        self.book = book

    @classmethod
    async def create(cls, host: ServiceHost) -> UsageService:
        ledger = shared_ledger(host.bus)
        ledger.price_of = lambda model_ref: price_of(host.config.current.models, model_ref)
        service = cls(host, ledger, BudgetBook(await host.kv("usage")))
        # Reads the roll-ups once (and, after an upgrade, folds the last 30 days' hours)
        # in the background, so the first usage page after a start is not the slow one.
        warm_up = asyncio.create_task(service._warm_up())

        async def stop_warm_up() -> None:
            warm_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warm_up

        host.on_stop(stop_warm_up)
        return service

    async def _warm_up(self) -> None:
        try:
            await usage_summary(self.ledger)
            # The usage page's default: the last 30 days' sessions.
            since, until = window(None, None, now_ms())
            await self.ledger.read_sessions(since, until)
        except Exception:  # only a head start: the first read does the same
            log.warning("usage: reading the roll-ups at start failed", exc_info=True)

    async def admit(self, agent_id: str, principal: Principal) -> None:
        """FORBIDDEN `BUDGET_EXHAUSTED` when a budget this run would spend from is spent."""
        try:
            await self.book.admit(
                self.host.config.current.usage.budgets, agent_id, principal, now_ms()
            )
        except Forbidden as exc:
            metrics.BUDGET_REFUSALS.labels(exc.data.get("scope", "")).inc()
            raise

    async def charge(
        self,
        *,
        run_id: str,
        session_key: str,
        agent_id: str,
        model_ref: str,
        principal_id: str,
        status: str,
        usage: Usage,
    ) -> None:
        """Record a concluded run's usage: ledger, counters, metrics. Nothing without any."""
        if not usage.calls and not usage.total_tokens:
            return
        provider, _, model = model_ref.partition("/")
        ended = now_ms()
        record: dict[str, Any] = {
            "runId": run_id,
            "ts": ended,
            "sessionKey": session_key,
            "agentId": agent_id,
            "model": model_ref,
            "provider": provider,
            "principal": principal_id,
            "status": status,
            "calls": usage.calls,
            "promptTokens": usage.prompt_tokens,
            "completionTokens": usage.completion_tokens,
            "cacheReadTokens": usage.cache_read_tokens,
            "cacheWriteTokens": usage.cache_write_tokens,
        }
        cost = cost_nano_usd(price_of(self.host.config.current.models, model_ref), record)
        record["costNanoUsd"] = cost
        _count(provider, model, agent_id, usage, cost)
        month = month_of(ended)
        writes = [
            self.ledger.append(record),
            self.book.add(counter_key(month, "agent", agent_id), run_id, usage.total_tokens, cost),
        ]
        token = token_id(principal_id)
        if token is not None:
            writes.append(
                self.book.add(counter_key(month, "token", token), run_id, usage.total_tokens, cost)
            )
        await asyncio.gather(*writes)

    # -- methods --------------------------------------------------------------------------
    async def status(self, params: UsageWindowParams, ctx: CallContext) -> UsageStatusResult:
        now = now_ms()
        since, until = window(params.since, params.until, now)
        bucket = bucket_for(since, until, params.bucket)
        records, budgets = await asyncio.gather(
            self.ledger.read(since, until, agent_id=params.agent_id, bucket=bucket),
            self.book.states(self.host.config.current.usage.budgets, now),
        )
        return UsageStatusResult(
            **summary_fields(records, since, until),
            bucket=bucket,
            series=series(records, since, until, bucket),
            budgets=budgets,
        )

    async def cost(self, params: UsageWindowParams, ctx: CallContext) -> UsageCostResult:
        since, until = window(params.since, params.until, now_ms())
        bucket = bucket_for(since, until, params.bucket)
        models = self.host.config.current.models
        entries = await self.ledger.read(since, until, agent_id=params.agent_id, bucket=bucket)
        try:
            priced = costs(entries, models, since, until, bucket)
        except StaleRollup:
            # A price changed to one the roll-ups cannot reproduce exactly (rollup.py).
            records = await self.ledger.read_records(since, until, agent_id=params.agent_id)
            priced = costs(records, models, since, until, bucket)
        return UsageCostResult(
            since=since,
            until=until,
            bucket=bucket,
            total_usd=usd(priced.total_nano),
            by_model=priced.by_model,
            by_agent=priced.by_agent,
            series=priced.series,
            unpriced=priced.unpriced,
        )


def _count(provider: str, model: str, agent: str, usage: Usage, cost_nano: int) -> None:
    for kind, value in (
        ("prompt", usage.prompt_tokens),
        ("completion", usage.completion_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        metrics.TOKENS.labels(provider, model, agent, kind).inc(value)
    metrics.RUNS.labels(provider, model, agent).inc()
    metrics.COST.labels(provider, model, agent).inc(usd(cost_nano))


def usage_handlers(parts: RuntimeService, usage: UsageService) -> dict[str, Handler]:
    async def session_records(
        raw_key: str, since_ms: int | None, until_ms: int | None
    ) -> tuple[str, str, int, int, list[dict[str, Any]]]:
        """(key, agentId, since, until, its usage records in the window): O(this session's
        runs in the window), the ledger's subjects name the session. SESSION_NOT_FOUND
        for a session that neither exists nor left records."""
        key, agent_id = parse_session_key(raw_key, parts.agents.default_id)
        since, until = window(since_ms, until_ms, now_ms())
        seen, records = await asyncio.gather(
            parts.sessions.lookup(key),
            usage.ledger.read_records(since, until, agent_id=agent_id, session_key=key),
        )
        if seen is None and not records:
            raise NotFound(f"no session {key!r}", code="SESSION_NOT_FOUND")
        return key, agent_id, since, until, records

    async def sessions_usage(params: SessionsUsageParams, ctx: CallContext) -> SessionsUsageResult:
        key, agent_id, since, until, records = await session_records(
            params.key, params.since, params.until
        )
        priced = costs(records, parts.config.models, since, until, "day")
        return SessionsUsageResult(
            key=key,
            agent_id=agent_id,
            since=since,
            until=until,
            totals=totals(records).tokens(),
            by_model=priced.by_model,
            cost_usd=usd(priced.total_nano),
        )

    async def usage_sessions(params: UsageSessionsParams, ctx: CallContext) -> UsageSessionsResult:
        since, until = window(params.since, params.until, now_ms())
        agent_id, key = params.agent_id, None
        if params.key is not None:
            key, owner = parse_session_key(params.key, parts.agents.default_id)
            if agent_id is not None and agent_id != owner:
                return per_session([], parts.config.models, since, until, params.limit)
            agent_id = owner
        models = parts.config.models
        read = await usage.ledger.read_sessions(since, until, agent_id=agent_id, session_key=key)
        try:
            return session_rows(
                read.spans, read.entries_of, read.everything, models, since, until, params.limit
            )
        except StaleRollup:
            # A price changed to one the roll-ups cannot reproduce exactly (rollup.py).
            records = await usage.ledger.read_records(
                since, until, agent_id=agent_id, session_key=key
            )
            return per_session(records, models, since, until, params.limit)

    async def sessions_usage_series(
        params: SessionsUsageSeriesParams, ctx: CallContext
    ) -> SessionsUsageSeriesResult:
        key, agent_id, since, until, records = await session_records(
            params.key, params.since, params.until
        )
        return SessionsUsageSeriesResult(
            key=key,
            agent_id=agent_id,
            since=since,
            until=until,
            runs=len(records),
            points=run_points(records, parts.config.models, params.max_points),
        )

    async def sessions_usage_logs(
        params: SessionsUsageLogsParams, ctx: CallContext
    ) -> SessionsUsageLogsResult:
        key, agent_id = parse_session_key(params.key, parts.agents.default_id)
        seen, messages = await asyncio.gather(
            parts.sessions.lookup(key), history_view(parts, key, params.limit)
        )
        if seen is None and not messages:
            raise NotFound(f"no session {key!r}", code="SESSION_NOT_FOUND")
        run_ids = {m.run_id for m in messages if m.run_id}
        records: list[dict[str, Any]] = []
        if run_ids:
            # A run's record is stamped when it concluded, after its messages: reading
            # from the oldest message on finds every one (only this session's subjects).
            since = min(m.ts for m in messages)
            found = await usage.ledger.read_records(
                since, now_ms() + 1, agent_id=agent_id, session_key=key
            )
            records = [r for r in found if r.get("runId") in run_ids]
        return SessionsUsageLogsResult(
            key=key,
            agent_id=agent_id,
            messages=messages,
            runs=run_costs(records, parts.config.models),
        )

    return {
        "sessions.usage.series": sessions_usage_series,
        "sessions.usage.logs": sessions_usage_logs,
        "usage.sessions": usage_sessions,
        "usage.status": usage.status,
        "usage.cost": usage.cost,
        "sessions.usage": sessions_usage,
    }
