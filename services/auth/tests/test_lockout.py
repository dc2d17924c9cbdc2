"""Lockout decisions from a `ratelimit.fail` reply, the lock table, and turn-taking."""

from __future__ import annotations

import asyncio
import time

import pytest

from aisopod.config.sections.limits import RateRule
from aisopod.contracts.ratelimit import CheckResult
from aisopod.errors import RateLimited
from aisopod.subjects import Subjects
from aisopod_auth.lockout import Lockout, address_key, lock_duration_ms

RULE = RateRule(name="auth_failures", limit=10, window_s=60, lockout_s=300, fail_open=False)


def result(**fields: object) -> CheckResult:
    base: dict[str, object] = {"allowed": True, "limit": 10, "remaining": 5, "reset_ms": 1000}
    return CheckResult.model_validate(base | fields)


def test_budget_left_means_no_lock() -> None:
    assert lock_duration_ms(result(), RULE) == 0


def test_last_attempt_spent_locks_for_the_rule_lockout() -> None:
    assert lock_duration_ms(result(remaining=0), RULE) == 300_000


def test_locked_reply_uses_its_retry_after() -> None:
    locked = result(allowed=False, remaining=0, locked=True, retry_after_ms=123_000)
    assert lock_duration_ms(locked, RULE) == 123_000
    refused = result(allowed=False, remaining=0, retry_after_ms=0)
    assert lock_duration_ms(refused, RULE) == 300_000


class _NoBus:
    """Only what Lockout reads at construction; these tests never touch NATS."""

    subjects = Subjects()


@pytest.fixture
def lockout() -> Lockout:
    return Lockout(_NoBus(), lambda: RULE)  # type: ignore[arg-type]


def test_lock_table(lockout: Lockout) -> None:
    now = int(time.time() * 1000)
    lockout.check("192.0.2.1")
    lockout._remember("192.0.2.1", now + 60_000)
    with pytest.raises(RateLimited) as err:
        lockout.check("192.0.2.1")
    assert err.value.detail_code == "AUTH_RATE_LIMITED"
    assert 0 < err.value.retry_after_ms <= 60_000
    lockout.check("192.0.2.2")  # other addresses unaffected
    lockout._remember("192.0.2.1", now + 1)  # an earlier end never shortens a lock
    assert lockout.retry_after_ms("192.0.2.1") > 1000
    lockout._remember("192.0.2.3", now - 1)
    assert lockout.retry_after_ms("192.0.2.3") == 0


async def test_attempts_from_one_address_take_turns(lockout: Lockout) -> None:
    inside: list[str] = []
    overlap: list[bool] = []

    async def attempt(ip: str, tag: str) -> None:
        async with lockout.serial(ip):
            overlap.append(any(t.startswith(ip) for t in inside))
            inside.append(f"{ip}/{tag}")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside.remove(f"{ip}/{tag}")

    await asyncio.gather(*(attempt("192.0.2.9", str(i)) for i in range(5)))
    assert overlap == [False] * 5
    assert lockout._gates == {}  # no state left behind

    started = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with lockout.serial("192.0.2.10"):
            started.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await started.wait()
    async with lockout.serial("192.0.2.11"):  # another address never waits
        pass
    release.set()
    await task


def test_addresses_keyed_as_the_ratelimit_service_keys_them() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2::9", 48) == "2001:db8:1::/48"
    assert address_key("not-an-ip") == "not-an-ip"


def test_one_lock_covers_the_whole_ipv6_prefix(lockout: Lockout) -> None:
    lockout._remember(lockout.key_of("2001:db8:5:6::1"), int(time.time() * 1000) + 60_000)
    with pytest.raises(RateLimited):
        lockout.check("2001:db8:5:6:ffff::2")
    lockout.check("2001:db8:5:7::1")
