"""The sliding log alone: exact admission over `(now - window, now]`, in ms."""

from __future__ import annotations

from aisopod_ratelimit.window import SlidingLog


def test_admits_limit_then_refuses_until_the_oldest_leaves() -> None:
    log = SlidingLog()
    assert [log.take(1000 + i, 3, 1000).allowed for i in range(3)] == [True, True, True]
    refused = log.take(1500, 3, 1000)
    assert not refused.allowed
    assert refused.remaining == 0
    # The oldest stamp (1000) leaves at 2000: 500 ms from now.
    assert refused.retry_after_ms == 500
    assert not log.take(1999, 3, 1000).allowed
    assert log.take(2000, 3, 1000).allowed  # exactly one window later: the slot is free


def test_window_slides_rather_than_resetting_in_buckets() -> None:
    log = SlidingLog()
    log.take(0, 4, 1000)
    log.take(0, 4, 1000)
    log.take(600, 4, 1000)
    log.take(600, 4, 1000)
    assert not log.take(900, 4, 1000).allowed
    # At 1000 the two stamps of t=0 leave; the two of t=600 still count.
    assert log.take(1000, 4, 1000).allowed
    assert log.take(1000, 4, 1000).allowed
    third = log.take(1000, 4, 1000)
    assert not third.allowed
    assert third.retry_after_ms == 600  # the t=600 stamps leave at 1600


def test_only_admitted_units_are_logged() -> None:
    log = SlidingLog()
    for t in range(100):
        log.take(t, 5, 10_000)
    assert len(log) == 5


def test_cost_takes_several_units_and_retry_waits_for_enough_to_leave() -> None:
    log = SlidingLog()
    assert log.take(0, 10, 1000, cost=4).remaining == 6
    assert log.take(100, 10, 1000, cost=4).remaining == 2
    refused = log.take(200, 10, 1000, cost=4)
    assert not refused.allowed
    # 8 used + 4 wanted - 10 = 2 must leave: the second stamp of t=0 → at 1000.
    assert refused.retry_after_ms == 800
    assert log.take(200, 10, 1000, cost=2).allowed


def test_cost_over_limit_never_fits() -> None:
    log = SlidingLog()
    tally = log.take(0, 3, 1000, cost=4)
    assert not tally.allowed
    assert tally.retry_after_ms == 1000


def test_peek_counts_nothing() -> None:
    log = SlidingLog()
    log.take(0, 2, 1000)
    assert log.peek(10, 2, 1000).allowed
    assert log.peek(10, 2, 1000).remaining == 1
    assert len(log) == 1


def test_a_clock_stepping_back_frees_nothing_early() -> None:
    log = SlidingLog()
    log.take(5000, 2, 1000)
    log.take(5000, 2, 1000)
    # The wall clock steps back 3 s: the stamps still count until 6000 of their time.
    refused = log.take(2000, 2, 1000)
    assert not refused.allowed
    assert refused.retry_after_ms == 1000
