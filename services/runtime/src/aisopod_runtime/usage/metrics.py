"""Prometheus metrics of usage, counted by the runtime that concluded the run (so the sum
over replicas is the cluster's usage; each replica's /metrics shows its own part)."""

from __future__ import annotations

from prometheus_client import Counter

TOKENS = Counter(
    "aisopod_usage_tokens_total",
    "Model tokens used by agent runs, by provider, model, agent and kind "
    "(prompt|completion|cache_read|cache_write; cache tokens are part of prompt)",
    ["provider", "model", "agent", "kind"],
)
RUNS = Counter(
    "aisopod_usage_runs_total",
    "Agent runs that reported usage, by provider, model and agent",
    ["provider", "model", "agent"],
)
COST = Counter(
    "aisopod_usage_cost_usd_total",
    "Cost of those runs in USD at the price configured when each run ended",
    ["provider", "model", "agent"],
)
BUDGET_REFUSALS = Counter(
    "aisopod_usage_budget_refusals_total",
    "Runs refused because a monthly budget was spent, by scope (agent|token)",
    ["scope"],
)
