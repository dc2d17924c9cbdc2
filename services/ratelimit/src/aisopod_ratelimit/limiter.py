"""Local, exact rate limiting: per rule, a sliding log per key plus lockouts.

Pure and synchronous (no I/O, no awaits), so each decision is atomic in the event loop:
two requests for one key can never interleave. Which replica decides a key is the
ownership layer's business (ownership.py); this module is what the owner runs.

Memory is bounded: per rule at most `max_keys` windows (the least recently touched is
forgotten first) and `max_keys` lockouts; `cleanup()` forgets windows idle for a whole
window and lockouts that ended, popping from the LRU end only (cost proportional to what
it removes, never a scan of every key).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aisopod_ratelimit.ruleset import Rule, RuleSet
from aisopod_ratelimit.window import SlidingLog

Clock = Callable[[], float]
"""Seconds since the epoch (injectable for tests; wall time so lockouts can be shared)."""

LockListener = Callable[[str, str, int], None]
"""(rule, key, until_ms): a lockout started (until_ms > 0) or was lifted (0)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_ms: int
    retry_after_ms: int = 0
    locked: bool = False
    reason: str = "ok"  # ok | exempt | limit | lockout | unreachable


class RuleState:
    __slots__ = ("locks", "rule", "windows")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.windows: OrderedDict[str, SlidingLog] = OrderedDict()
        self.locks: dict[str, int] = {}  # key → until (ms)


class Limiter:
    def __init__(
        self,
        ruleset: RuleSet,
        *,
        clock: Clock = time.time,
        on_lock: LockListener | None = None,
    ) -> None:
        self.clock = clock
        self.on_lock = on_lock
        self.evicted = 0
        self._states: dict[str, RuleState] = {}
        self.ruleset = ruleset
        self.apply(ruleset)

    # -- configuration --------------------------------------------------------------
    def apply(self, ruleset: RuleSet) -> None:
        """Switch to new rules: a rule kept by name keeps its windows and lockouts (its
        stamps are absolute times, so a changed limit or window applies at once)."""
        states = {}
        for name, rule in ruleset.rules.items():
            state = self._states.get(name) or RuleState(rule)
            state.rule = rule
            states[name] = state
        self._states = states
        self.ruleset = ruleset
        for state in states.values():
            self._bound(state)

    def rule(self, name: str) -> Rule | None:
        state = self._states.get(name)
        return state.rule if state is not None else None

    # -- decisions ------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _settled(self, rule_name: str, key: str) -> tuple[RuleState, int, Decision | None]:
        """The rule's state, the time, and the answer when no counting is needed: the key
        is exempt, or locked out."""
        state = self._states[rule_name]
        rule = state.rule
        if self.ruleset.is_exempt(rule, key):
            return state, 0, Decision(True, rule.limit, rule.limit, 0, reason="exempt")
        now = self.now_ms()
        return state, now, self._locked(state, key, now)

    def check(self, rule_name: str, key: str, cost: int = 1) -> Decision:
        """Count `cost` units toward the key; refuse (and maybe lock) when they don't fit."""
        state, now, settled = self._settled(rule_name, key)
        if settled is not None:
            return settled
        rule = state.rule
        tally = self._window(state, key, now).take(now, rule.limit, rule.window_ms, cost)
        if tally.allowed:
            return Decision(True, rule.limit, tally.remaining, tally.reset_ms)
        if rule.lockout_ms:
            return self._lock(state, key, now)
        return Decision(
            False, rule.limit, tally.remaining, tally.reset_ms, tally.retry_after_ms, reason="limit"
        )

    def fail(self, rule_name: str, key: str) -> Decision:
        """Record one failure; the `limit`-th in the window locks the key (if the rule has
        a lockout). `allowed` says whether another attempt may be made now."""
        state, now, settled = self._settled(rule_name, key)
        if settled is not None:
            return settled
        rule = state.rule
        window = self._window(state, key, now)
        tally = window.take(now, rule.limit, rule.window_ms)
        if tally.allowed and tally.remaining > 0:
            return Decision(True, rule.limit, tally.remaining, tally.reset_ms)
        if rule.lockout_ms:
            return self._lock(state, key, now)
        # Full (this failure was the last that fit, or did not fit): wait for a slot.
        after = window.peek(now, rule.limit, rule.window_ms)
        return Decision(False, rule.limit, 0, after.reset_ms, after.retry_after_ms, reason="limit")

    def status(self, rule_name: str, key: str, cost: int = 1) -> Decision:
        """What `check` would answer now, counting nothing."""
        state, now, settled = self._settled(rule_name, key)
        if settled is not None:
            return settled
        rule = state.rule
        window = state.windows.get(key)
        if window is None:
            return Decision(True, rule.limit, rule.limit, 0)
        tally = window.peek(now, rule.limit, rule.window_ms, cost)
        return Decision(
            tally.allowed,
            rule.limit,
            tally.remaining,
            tally.reset_ms,
            tally.retry_after_ms,
            reason="ok" if tally.allowed else "limit",
        )

    def reset(self, rule_name: str, key: str) -> bool:
        """Forget the key's window and lockout; True when there was anything to forget."""
        state = self._states[rule_name]
        had = state.windows.pop(key, None) is not None
        if state.locks.pop(key, None) is not None:
            had = True
            if self.on_lock is not None:
                self.on_lock(rule_name, key, 0)
        return had

    # -- lockouts shared with other replicas (lockstore.py) ---------------------------
    def mirror_lock(self, rule_name: str, key: str, until_ms: int) -> None:
        """Apply a lockout another replica started (or lifted, `until_ms` 0)."""
        state = self._states.get(rule_name)
        if state is None:
            return
        if until_ms <= 0:
            state.locks.pop(key, None)
        elif until_ms > state.locks.get(key, 0):
            state.locks[key] = until_ms
            self._bound_locks(state)

    # -- housekeeping ---------------------------------------------------------------
    def cleanup(self) -> int:
        """Forget windows idle for a whole window and lockouts that ended."""
        now = self.now_ms()
        removed = 0
        for state in self._states.values():
            windows = state.windows
            horizon = now - state.rule.window_ms
            while windows:
                key = next(iter(windows))
                if windows[key].touched > horizon:
                    break  # LRU order: every later key was touched more recently
                del windows[key]
                removed += 1
            ended = [k for k, until in state.locks.items() if until <= now]
            for key in ended:
                del state.locks[key]
            removed += len(ended)
        return removed

    def sizes(self) -> dict[str, tuple[int, int]]:
        """rule → (windows, lockouts) held."""
        return {name: (len(s.windows), len(s.locks)) for name, s in self._states.items()}

    # -- internals ------------------------------------------------------------------
    def _window(self, state: RuleState, key: str, now: int) -> SlidingLog:
        windows = state.windows
        window = windows.get(key)
        if window is None:
            window = windows[key] = SlidingLog()
            if len(windows) > self.ruleset.max_keys:
                windows.popitem(last=False)
                self.evicted += 1
        else:
            windows.move_to_end(key)
        window.touched = now
        return window

    def _locked(self, state: RuleState, key: str, now: int) -> Decision | None:
        until = state.locks.get(key)
        if until is None:
            return None
        if until <= now:
            del state.locks[key]
            return None
        rule = state.rule
        return Decision(False, rule.limit, 0, until - now, until - now, True, "lockout")

    def _lock(self, state: RuleState, key: str, now: int) -> Decision:
        rule = state.rule
        until = now + rule.lockout_ms
        state.locks[key] = until
        # The failures that led here are served by the lockout; a fresh window after it.
        state.windows.pop(key, None)
        self._bound_locks(state)
        if self.on_lock is not None:
            self.on_lock(rule.name, key, until)
        return Decision(False, rule.limit, 0, rule.lockout_ms, rule.lockout_ms, True, "lockout")

    def _bound(self, state: RuleState) -> None:
        while len(state.windows) > self.ruleset.max_keys:
            state.windows.popitem(last=False)
            self.evicted += 1
        self._bound_locks(state)

    def _bound_locks(self, state: RuleState) -> None:
        locks = state.locks
        if len(locks) > self.ruleset.max_keys:
            # Under a flood of locked keys keep the ones locked longest.
            for key, _ in sorted(locks.items(), key=lambda kv: kv[1])[: len(locks) // 10 or 1]:
                del locks[key]
