"""Log records of the LOGS stream as logs.tail lines."""

from __future__ import annotations

from aisopod import codec
from aisopod_runtime.logs_tail import LEVELS, passes, to_line


def test_records_become_lines_with_extras_kept() -> None:
    record = {
        "ts": 5,
        "level": "WARNING",
        "service": "auth",
        "instance": "auth-1",
        "logger": "aisopod.auth",
        "msg": "slow",
        "hash": "abc",
    }
    line = to_line(42, codec.dumps(record))
    assert line == {
        "seq": 42,
        "ts": 5,
        "service": "auth",
        "level": "warning",
        "message": "slow",
        "instance": "auth-1",
        "logger": "aisopod.auth",
        "fields": {"hash": "abc"},
    }
    assert passes(line, LEVELS["warning"]) and not passes(line, LEVELS["error"])
    assert to_line(1, b"not json") is None
