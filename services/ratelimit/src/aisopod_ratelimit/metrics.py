"""Prometheus metrics of the ratelimit service, counted where a request enters (so the sum
over replicas is the number of requests, whichever replica owned the key)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISIONS = Counter(
    "aisopod_ratelimit_decisions_total",
    "Rate-limit decisions by rule, operation (check|fail|status|reset) and result",
    ["rule", "op", "result"],
)
DENIALS = Counter(
    "aisopod_ratelimit_denials_total",
    "Refusals by rule and reason (limit|lockout|unreachable)",
    ["rule", "reason"],
)
LOCKOUTS = Counter("aisopod_ratelimit_lockouts_total", "Lockouts started", ["rule"])
DEGRADED = Counter(
    "aisopod_ratelimit_degraded_total",
    "Decisions taken without the key's state (owner unreachable), by fail mode",
    ["rule", "mode"],
)
FORWARDS = Counter(
    "aisopod_ratelimit_forwards_total",
    "Decisions forwarded to the replica owning the key, by outcome (ok|gone|unreachable)",
    ["outcome"],
)
KEYS = Gauge("aisopod_ratelimit_keys", "Windows held in memory", ["rule"])
LOCKED_KEYS = Gauge("aisopod_ratelimit_locked_keys", "Lockouts held in memory", ["rule"])
EVICTIONS = Gauge(
    "aisopod_ratelimit_evictions", "Windows forgotten early because a rule held max keys"
)
MEMBERS = Gauge("aisopod_ratelimit_members", "Live ratelimit replicas this one knows of")
MEMBER_PROBES = Counter(
    "aisopod_ratelimit_member_probes_total",
    "Direct probes of a replica whose heartbeats stopped, by outcome "
    "(answered|gone|unanswered); only `gone` moves its keys",
    ["outcome"],
)
RESYNCS = Counter(
    "aisopod_ratelimit_resyncs_total",
    "Re-syncs of this replica's own membership before deciding, after a stall or a NATS "
    "reconnect, by outcome (ok|failed)",
    ["outcome"],
)


class DecisionCounters:
    """Bound children per label set: the decision path does one dict look-up, not
    `labels()`, which takes a lock and builds a tuple each time."""

    def __init__(self) -> None:
        self._decisions: dict[tuple[str, str, str], Counter] = {}
        self._denials: dict[tuple[str, str], Counter] = {}

    def decision(self, rule: str, op: str, result: str) -> None:
        key = (rule, op, result)
        child = self._decisions.get(key)
        if child is None:
            child = self._decisions[key] = DECISIONS.labels(rule, op, result)
        child.inc()

    def denial(self, rule: str, reason: str) -> None:
        key = (rule, reason)
        child = self._denials.get(key)
        if child is None:
            child = self._denials[key] = DENIALS.labels(rule, reason)
        child.inc()
