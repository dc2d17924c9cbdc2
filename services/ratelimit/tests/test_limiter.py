"""The local limiter: rules, lockouts, exemptions, live reconfiguration, bounded memory."""

from __future__ import annotations

import sys

import pytest

from aisopod.config.sections.limits import LimitsSection, RateRule
from aisopod_ratelimit.limiter import Limiter
from aisopod_ratelimit.ruleset import RuleSet

from .clock import FakeClock


def ruleset(*rules: RateRule, **section: object) -> RuleSet:
    return RuleSet.from_section(LimitsSection(rules=list(rules), routes=[], **section))


def test_check_admits_the_limit_then_429_with_retry_after() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=3, window_s=10)), clock=clock)
    assert [limiter.check("r", "ip:a").remaining for _ in range(3)] == [2, 1, 0]
    clock.advance(4)
    refused = limiter.check("r", "ip:a")
    assert (refused.allowed, refused.reason, refused.retry_after_ms) == (False, "limit", 6000)
    assert limiter.check("r", "ip:b").allowed  # another key has its own window
    clock.advance(6)
    assert limiter.check("r", "ip:a").allowed


def test_check_past_the_limit_starts_the_lockout_which_outlasts_the_window() -> None:
    clock = FakeClock()
    rule = RateRule(name="r", limit=2, window_s=1, lockout_s=30)
    limiter = Limiter(ruleset(rule), clock=clock)
    locks: list[tuple[str, str, int]] = []
    limiter.on_lock = lambda *args: locks.append(args)
    limiter.check("r", "k")
    limiter.check("r", "k")
    third = limiter.check("r", "k")
    assert (third.allowed, third.locked, third.retry_after_ms) == (False, True, 30_000)
    assert locks == [("r", "k", limiter.now_ms() + 30_000)]
    clock.advance(5)  # the window has long slid; the lockout holds
    held = limiter.check("r", "k")
    assert (held.allowed, held.locked, held.retry_after_ms) == (False, True, 25_000)
    clock.advance(25)
    assert limiter.check("r", "k").allowed


def test_fail_locks_at_the_limit_th_failure_and_status_counts_nothing() -> None:
    clock = FakeClock()
    rule = RateRule(name="auth", limit=3, window_s=60, lockout_s=300, fail_open=False)
    limiter = Limiter(ruleset(rule), clock=clock)
    assert limiter.status("auth", "ip:x").allowed
    first, second = limiter.fail("auth", "ip:x"), limiter.fail("auth", "ip:x")
    assert (first.allowed, first.remaining, second.remaining) == (True, 2, 1)
    for _ in range(5):
        assert limiter.status("auth", "ip:x").allowed  # asking is free
    third = limiter.fail("auth", "ip:x")
    assert (third.allowed, third.locked, third.retry_after_ms) == (False, True, 300_000)
    status = limiter.status("auth", "ip:x")
    assert (status.allowed, status.locked) == (False, True)
    clock.advance(299)
    assert not limiter.fail("auth", "ip:x").allowed  # failures while locked don't extend it
    clock.advance(1)
    assert limiter.status("auth", "ip:x").allowed


def test_fail_without_lockout_refuses_until_a_failure_leaves() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=2, window_s=10)), clock=clock)
    limiter.fail("r", "k")
    clock.advance(1)
    last = limiter.fail("r", "k")
    assert (last.allowed, last.locked, last.retry_after_ms) == (False, False, 9000)


def test_reset_forgets_window_and_lockout() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=1, window_s=60, lockout_s=60)), clock=clock)
    lifted: list[int] = []
    limiter.check("r", "k")
    assert limiter.check("r", "k").locked
    limiter.on_lock = lambda _r, _k, until: lifted.append(until)
    assert limiter.reset("r", "k") is True
    assert lifted == [0]
    assert limiter.check("r", "k").allowed
    assert limiter.reset("r", "other") is False


def test_exempt_cidrs_skip_counting_but_not_rules_that_refuse_exemption() -> None:
    rules = ruleset(
        RateRule(name="http", limit=1, window_s=60),
        RateRule(name="auth", limit=1, window_s=60, lockout_s=60, exempt=False),
        exempt_cidrs=["10.0.0.0/8"],
    )
    limiter = Limiter(rules, clock=FakeClock())
    for _ in range(5):
        decision = limiter.check("http", "ip:10.1.2.3")
        assert (decision.allowed, decision.reason) == (True, "exempt")
    limiter.check("http", "ip:192.0.2.1")
    assert not limiter.check("http", "ip:192.0.2.1").allowed
    assert limiter.fail("auth", "ip:10.1.2.3").locked


def test_new_rules_apply_at_once_and_keep_the_windows_of_kept_rules() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=5, window_s=60)), clock=clock)
    for _ in range(3):
        limiter.check("r", "k")
    limiter.apply(ruleset(RateRule(name="r", limit=3, window_s=60)))
    refused = limiter.check("r", "k")
    assert (refused.allowed, refused.limit) == (False, 3)
    limiter.apply(ruleset(RateRule(name="r", limit=4, window_s=60)))
    assert limiter.check("r", "k").allowed
    limiter.apply(ruleset(RateRule(name="s", limit=4, window_s=60)))
    with pytest.raises(KeyError):
        limiter.check("r", "k")


def test_mirrored_lockouts_apply_and_lifts_clear_them() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=5, window_s=60, lockout_s=60)), clock=clock)
    limiter.mirror_lock("r", "k", limiter.now_ms() + 10_000)
    assert limiter.check("r", "k").retry_after_ms == 10_000
    limiter.mirror_lock("unknown-rule", "k", limiter.now_ms() + 10_000)  # ignored
    limiter.mirror_lock("r", "k", 0)
    assert limiter.check("r", "k").allowed


def test_100k_distinct_keys_stay_bounded_and_cleanup_forgets_idle_ones() -> None:
    clock = FakeClock()
    rules = ruleset(RateRule(name="http", limit=600, window_s=60), max_keys_per_rule=20_000)
    limiter = Limiter(rules, clock=clock)
    for i in range(100_000):
        addr = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        assert limiter.check("http", f"ip:{addr}").allowed
    windows, _ = limiter.sizes()["http"]
    assert windows == 20_000  # the least recently used 80k were forgotten
    assert limiter.evicted == 80_000
    assert _bytes_held(limiter, "http") < 20_000 * 400  # a few hundred bytes a key
    # The most recent key is still counted.
    assert limiter.check("http", "ip:10.1.134.159").remaining == 598
    clock.advance(30)
    limiter.check("http", "ip:10.1.134.159")
    clock.advance(30.001)
    assert limiter.cleanup() == 19_999  # idle a whole window: gone; the one touched at 30 s stays
    assert limiter.sizes()["http"] == (1, 0)


def _bytes_held(limiter: Limiter, rule: str) -> int:
    """The windows' own memory: the table, each key, log object and stamp array."""
    windows = limiter._states[rule].windows
    # An OrderedDict entry also costs a linked-list node (~56 bytes) beyond the table.
    total = sys.getsizeof(windows) + 56 * len(windows)
    for key, log in windows.items():
        total += sys.getsizeof(key) + sys.getsizeof(log) + sys.getsizeof(log.stamps)
    return total


def test_cleanup_removes_ended_lockouts() -> None:
    clock = FakeClock()
    limiter = Limiter(ruleset(RateRule(name="r", limit=1, window_s=1, lockout_s=10)), clock=clock)
    for i in range(50):
        limiter.check("r", f"k{i}")
        limiter.check("r", f"k{i}")
    assert limiter.sizes()["r"] == (0, 50)
    clock.advance(10)
    assert limiter.cleanup() == 50
    assert limiter.sizes()["r"] == (0, 0)
