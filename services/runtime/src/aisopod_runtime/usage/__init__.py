"""Usage and cost of agent runs: the ledger, the monthly counters behind budgets, the
`usage.*` and `sessions.usage` methods (docs/runtime.md, "Usage, cost and budgets")."""

from aisopod_runtime.usage.service import UsageService, usage_handlers

__all__ = ["UsageService", "usage_handlers"]
