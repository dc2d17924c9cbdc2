"""The suite's config-write helper retries only what the control-write limit refused,
after the hint it gave, and gives up at its deadline."""

from __future__ import annotations

import pytest

from aisopod.errors import RateLimited
from tests.support.control_writes import cli_retry_after_s, control_write, retry_after_s
from tests.support.ws_client import RpcError


def refusal(rule: str, retry_after_ms: int) -> RpcError:
    data = {"code": "RATE_LIMITED", "rule": rule, "retryAfterMs": retry_after_ms}
    return RpcError({"code": RateLimited.code, "message": "too many", "data": data})


def test_only_a_control_write_refusal_names_a_wait() -> None:
    assert retry_after_s(refusal("control_writes", 1500)) == 1.5
    assert retry_after_s(RateLimited("x", retryAfterMs=20, rule="control_writes")) == 0.02
    assert retry_after_s(refusal("http", 1500)) is None
    assert retry_after_s(RpcError({"code": -32001, "data": {"rule": "control_writes"}})) is None
    assert retry_after_s(ValueError("no")) is None


async def test_a_refused_write_is_sent_again_after_the_hint() -> None:
    answers: list[BaseException | str] = [refusal("control_writes", 5), "written"]
    sent = 0

    async def write() -> str:
        nonlocal sent
        sent += 1
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await control_write(write) == "written"
    assert sent == 2


async def test_other_errors_and_refusals_past_the_deadline_are_raised() -> None:
    async def other_rule() -> None:
        raise refusal("http", 5)

    with pytest.raises(RpcError) as raised:
        await control_write(other_rule)
    assert raised.value.data["rule"] == "http"

    async def always_refused() -> None:
        raise refusal("control_writes", 60_000)

    with pytest.raises(RpcError) as raised:
        await control_write(always_refused, deadline_s=1.0)
    assert raised.value.data["retryAfterMs"] == 60_000


def test_the_clis_printed_refusal_names_its_wait() -> None:
    data = {"code": "RATE_LIMITED", "retryAfterMs": 2500, "rule": "control_writes"}
    printed = f"aisopod: too many control writes (3 per window); retry later (-32029) {data}"
    assert cli_retry_after_s(printed.replace("'", '"') + "\n") == 2.5
    assert cli_retry_after_s('aisopod: stale (-32009) {"code": "STALE_BASE_HASH"}') is None
    assert cli_retry_after_s("aisopod: --params must be a JSON object") is None
