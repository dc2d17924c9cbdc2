"""Next run times of cron, every and at schedules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from aisopod.catalogue.cron import Schedule
from aisopod.errors import InvalidParams
from aisopod_runtime.cron.schedule import next_run_ms, validate

SCHEDULE = TypeAdapter(Schedule)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_every_is_anchored_at_creation_and_skips_missed_slots() -> None:
    every = SCHEDULE.validate_python({"kind": "every", "everyMs": 1000})
    anchor = 1_000_000
    assert next_run_ms(every, after_ms=anchor, anchor_ms=anchor, fired=False) == anchor + 1000
    assert next_run_ms(every, after_ms=anchor + 999, anchor_ms=anchor, fired=True) == anchor + 1000
    assert next_run_ms(every, after_ms=anchor + 1000, anchor_ms=anchor, fired=True) == anchor + 2000
    # Down for an hour: the next run is the first slot after now, not the backlog.
    late = anchor + 3_600_500
    assert next_run_ms(every, after_ms=late, anchor_ms=anchor, fired=True) == anchor + 3_601_000


def test_cron_expression_in_a_time_zone() -> None:
    weekdays_9am = SCHEDULE.validate_python(
        {"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Paris"}
    )
    saturday = ms(2025, 3, 1, 12, 0)  # a Saturday
    # Monday 9:00 in Paris (UTC+1 in March before the switch) = 8:00 UTC.
    expected = ms(2025, 3, 3, 8, 0)
    assert next_run_ms(weekdays_9am, after_ms=saturday, anchor_ms=0, fired=False) == expected


def test_six_fields_put_seconds_first() -> None:
    every_ten_s = SCHEDULE.validate_python({"kind": "cron", "expr": "*/10 * * * * *"})
    start = ms(2025, 1, 1, 0, 0) + 3_000
    assert next_run_ms(every_ten_s, after_ms=start, anchor_ms=0, fired=False) == start + 7_000


def test_at_fires_once() -> None:
    at = SCHEDULE.validate_python({"kind": "at", "at": "2030-01-01T00:00:00+00:00"})
    when = ms(2030, 1, 1, 0, 0)
    assert next_run_ms(at, after_ms=0, anchor_ms=0, fired=False) == when
    assert next_run_ms(at, after_ms=when + 5, anchor_ms=0, fired=False) == when  # missed: due
    assert next_run_ms(at, after_ms=0, anchor_ms=0, fired=True) is None


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "cron", "expr": "61 * * * *"},
        {"kind": "cron", "expr": "* * * * *", "tz": "Mars/Olympus"},
    ],
)
def test_invalid_schedules_are_invalid_params(schedule: dict) -> None:
    with pytest.raises(InvalidParams):
        validate(SCHEDULE.validate_python(schedule))
