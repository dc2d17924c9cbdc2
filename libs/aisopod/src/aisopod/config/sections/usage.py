"""Usage budgets (runtime): an optional monthly limit per agent and per API token.

A budget limits tokens, cost (USD at the prices of `models.providers[].models[].cost`),
or both; once the calendar month (UTC) has spent either limit, new runs of that agent, or
started with that token, are refused (FORBIDDEN `BUDGET_EXHAUSTED`). docs/runtime.md,
"Usage, cost and budgets".
"""

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from aisopod.config.sections.base import Section

_AgentId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
]
# API token ids as `aisopod token create` makes them (the part after `token:`).
_TokenId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]


class Budget(Section):
    monthly_tokens: int | None = Field(None, ge=1, description="prompt + completion tokens")
    monthly_cost_usd: float | None = Field(None, gt=0, le=1_000_000_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _some_limit(self) -> "Budget":
        if self.monthly_tokens is None and self.monthly_cost_usd is None:
            raise ValueError("a budget needs monthlyTokens, monthlyCostUsd or both")
        return self


class Budgets(Section):
    agents: dict[_AgentId, Budget] = Field(default_factory=dict, description="by agent id")
    tokens: dict[_TokenId, Budget] = Field(default_factory=dict, description="by API token id")


class UsageSection(Section):
    budgets: Budgets = Field(default_factory=Budgets)
