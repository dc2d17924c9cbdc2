"""Which calls the bus sends again after a reconnect (`bus.resendable`): one rule for
Bus.call and ws-gateway's forward, read off the method catalogue."""

from __future__ import annotations

from typing import Any

import pytest

from aisopod.bus import resendable


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("config.get", {}, True),  # a read
        ("agent.wait", {"runId": "r1"}, True),  # a pure wait
        ("agent", {"message": "hi", "idempotencyKey": "k1"}, True),  # the owner dedupes
        ("agent", {"message": "hi"}, False),  # no key: a repeat would run it twice
        ("agent", {"message": "hi", "idempotencyKey": ""}, False),
        ("chat.send", ["not", "a", "dict"], False),
        ("config.patch", {"patch": {}, "idempotencyKey": "k2"}, False),  # not deduplicated
        ("no.such.method", {}, False),
    ],
)
def test_resendable_follows_the_catalogue(method: str, params: Any, expected: bool) -> None:
    assert resendable(method, params) is expected
