"""usage: what the model calls of agent runs used (tokens), what that cost, the budgets.

Totals come from the usage ledger (one record per finished run, docs/runtime.md "Usage,
cost and budgets"); costs from the per-model prices of the configuration; budgets from
their monthly counters. Pure data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from aisopod.catalogue.chat import ChatMessage
from aisopod.catalogue.fields import AgentId, EpochMs, SessionKey, absent_when_none
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

R = Requirement.READ
RT = ServiceName.RUNTIME

DAY_MS = 86_400_000
DEFAULT_WINDOW_MS = 30 * DAY_MS
MAX_WINDOW_MS = 366 * DAY_MS
Bucket = Literal["hour", "day"]


def _check_window(since: int | None, until: int | None) -> None:
    if since is not None and until is not None:
        if since >= until:
            raise ValueError("since must be before until")
        if until - since > MAX_WINDOW_MS:
            raise ValueError("the window is longer than 366 days")


class UsageWindowParams(Params):
    """`[since, until)` in epoch ms: `until` defaults to now, `since` to 30 days before
    `until`; at most 366 days. `bucket` is the series' step (default: `hour` for windows up
    to two days, else `day`, both in UTC). `agentId` keeps only that agent's runs."""

    since: EpochMs | None = None
    until: EpochMs | None = None
    agent_id: AgentId | None = None
    bucket: Bucket | None = None

    @model_validator(mode="after")
    def _window(self) -> UsageWindowParams:
        _check_window(self.since, self.until)
        return self


class UsageTokens(Result):
    """Tokens of some runs. `promptTokens` counts every input token, cached ones included;
    `cacheReadTokens` and `cacheWriteTokens` are the parts of it the provider served from
    or wrote to its prompt cache (0 when it does not say)."""

    runs: int = Field(ge=0)
    calls: int = Field(ge=0)
    """Model calls (a run with tool steps makes several)."""
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(ge=0)
    cache_write_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class ProviderUsage(UsageTokens):
    provider: str


class ModelUsage(UsageTokens):
    model: str
    """`<provider>/<model>`, as agents and sessions name it."""
    provider: str


class AgentUsage(UsageTokens):
    agent_id: str


class UsagePoint(UsageTokens):
    start: EpochMs
    """The bucket's first millisecond (UTC hour or day)."""


class BudgetState(Result):
    """A configured monthly budget and what its month has spent so far (UTC month)."""

    scope: Literal["agent", "token"]
    id: str
    month: str
    """`YYYY-MM`."""
    spent_tokens: int = Field(ge=0)
    spent_cost_usd: float = Field(ge=0)
    limit_tokens: int | None = absent_when_none()
    limit_cost_usd: float | None = absent_when_none()
    exhausted: bool
    """New runs under this budget are refused until the month ends."""
    resets_at: EpochMs


class UsageSummary(Result):
    """Totals of a window, and per provider, model and agent (most tokens first)."""

    since: EpochMs
    until: EpochMs
    totals: UsageTokens
    by_provider: list[ProviderUsage]
    by_model: list[ModelUsage]
    by_agent: list[AgentUsage]


class UsageStatusResult(UsageSummary):
    bucket: Bucket
    series: list[UsagePoint]
    """Every bucket of the window, oldest first, empty ones included."""
    budgets: list[BudgetState]


class ModelCost(Result):
    """One model's tokens and their cost at the current prices (`priced: false` when the
    configuration has no price for it: its cost counts as 0)."""

    model: str
    provider: str
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(ge=0)
    cache_write_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    priced: bool


class AgentCost(Result):
    agent_id: str
    cost_usd: float = Field(ge=0)


class CostPoint(Result):
    start: EpochMs
    cost_usd: float = Field(ge=0)


class UsageCostResult(Result):
    since: EpochMs
    until: EpochMs
    bucket: Bucket
    currency: Literal["USD"] = "USD"
    total_usd: float = Field(ge=0)
    by_model: list[ModelCost]
    by_agent: list[AgentCost]
    series: list[CostPoint]
    unpriced: list[str]
    """Models that were used in the window but have no price in the configuration."""


class SessionsUsageParams(Params):
    """One session's usage; the window as for `usage.status` (default: the last 30 days)."""

    key: SessionKey
    since: EpochMs | None = None
    until: EpochMs | None = None

    @model_validator(mode="after")
    def _window(self) -> SessionsUsageParams:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class SessionsUsageResult(Result):
    key: str
    agent_id: str
    since: EpochMs
    until: EpochMs
    totals: UsageTokens
    by_model: list[ModelCost]
    cost_usd: float = Field(ge=0)


QUARTER_MS = 900_000
SESSIONS_MAX = 1000


class UsageSessionsParams(Params):
    """Usage per session over a window (`since`, `until`, `agentId` as for `usage.status`):
    the sessions with runs in it, most recently active first. `key` keeps only that
    session; `limit` caps the session rows (default 50, at most 1000), never the totals."""

    since: EpochMs | None = None
    until: EpochMs | None = None
    agent_id: AgentId | None = None
    key: SessionKey | None = None
    limit: int = Field(default=50, ge=1, le=SESSIONS_MAX)

    @model_validator(mode="after")
    def _window(self) -> UsageSessionsParams:
        _check_window(self.since, self.until)
        return self


class UsageCell(Result):
    """The runs of one agent and model concluded in one UTC quarter hour, and their cost
    at the current prices, split as the cost formula adds it up (0 when unpriced)."""

    start: EpochMs
    """The quarter hour's first millisecond (every time zone's days start on one)."""
    agent_id: str
    model: str
    provider: str
    runs: int = Field(ge=0)
    calls: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cache_read_tokens: int = Field(ge=0)
    cache_write_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)
    input_cost_usd: float = Field(ge=0)
    """The prompt tokens no cache touched."""
    output_cost_usd: float = Field(ge=0)
    cache_read_cost_usd: float = Field(ge=0)
    cache_write_cost_usd: float = Field(ge=0)
    cost_usd: float = Field(ge=0)
    priced: bool


class SessionUsageRow(Result):
    key: str
    agent_id: str
    first_at: EpochMs
    """When its first run in the window concluded."""
    last_at: EpochMs
    totals: UsageTokens
    cost_usd: float = Field(ge=0)
    cells: list[UsageCell]
    """Oldest first."""


class UsageSessionsResult(Result):
    since: EpochMs
    until: EpochMs
    session_count: int = Field(ge=0)
    """Sessions with runs in the window (rows beyond `limit` included)."""
    sessions: list[SessionUsageRow]
    cells: list[UsageCell]
    """Every run of the window (all sessions, rows beyond `limit` included), oldest first."""


SERIES_POINTS_MAX = 1000
LOG_MESSAGES_MAX = 1000


class SessionsUsageSeriesParams(Params):
    """One session's runs over a window (`since`, `until` as for `usage.status`: default
    the last 30 days, at most 366), oldest first, as the points of a chart. At most
    `maxPoints` points (default 200): with more runs, each point adds up that many
    consecutive runs (the same number each, the last point fewer), stamped with the last."""

    key: SessionKey
    since: EpochMs | None = None
    until: EpochMs | None = None
    max_points: int = Field(default=200, ge=1, le=SERIES_POINTS_MAX)

    @model_validator(mode="after")
    def _window(self) -> SessionsUsageSeriesParams:
        _check_window(self.since, self.until)
        return self


class UsageRunPoint(UsageTokens):
    """One run, or consecutive runs added up, with their cost at the current prices."""

    ts: EpochMs
    """When the (last) run concluded."""
    cost_usd: float = Field(ge=0)
    priced: bool
    """Every run of the point used a model with a configured price."""


class SessionsUsageSeriesResult(Result):
    key: str
    agent_id: str
    since: EpochMs
    until: EpochMs
    runs: int = Field(ge=0)
    """Runs of the session in the window (every point together)."""
    points: list[UsageRunPoint]


class SessionsUsageLogsParams(Params):
    """The newest `limit` messages of a session's transcript (as `chat.history` shows
    them, default 200, at most 1000) with what each run cost."""

    key: SessionKey
    limit: int = Field(default=200, ge=1, le=LOG_MESSAGES_MAX)


class RunCost(Result):
    """A run's tokens and its cost at the current prices (from the usage ledger)."""

    run_id: str
    model: str
    total_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    priced: bool


class SessionsUsageLogsResult(Result):
    key: str
    agent_id: str
    messages: list[ChatMessage]
    """Oldest first, as `chat.history` answers (after a compaction: its summary, then the
    messages after it)."""
    runs: list[RunCost]
    """The runs of those messages that are in the ledger (a run that called no model, or
    one older than the ledger keeps, is not)."""


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "usage.status",
        RT,
        R,
        UsageWindowParams,
        UsageStatusResult,
        description="token totals per provider/model/agent over a window, budgets",
    ),
    MethodSpec(
        "usage.cost",
        RT,
        R,
        UsageWindowParams,
        UsageCostResult,
        description="cost of a window at the configured per-model prices",
    ),
    MethodSpec(
        "sessions.usage",
        RT,
        R,
        SessionsUsageParams,
        SessionsUsageResult,
        description="one session's tokens and cost",
    ),
    MethodSpec(
        "usage.sessions",
        RT,
        R,
        UsageSessionsParams,
        UsageSessionsResult,
        description="tokens and cost per session over a window, by quarter hour and model",
    ),
    MethodSpec(
        "sessions.usage.series",
        RT,
        R,
        SessionsUsageSeriesParams,
        SessionsUsageSeriesResult,
        description="one session's runs over a window with their tokens and cost, for charts",
    ),
    MethodSpec(
        "sessions.usage.logs",
        RT,
        R,
        SessionsUsageLogsParams,
        SessionsUsageLogsResult,
        description="a session's newest messages with what each run cost",
    ),
)
