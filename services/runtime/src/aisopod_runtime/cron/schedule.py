"""Next run times of the three schedule kinds. Pure: no I/O, time passed in.

- `cron`: a 5-field expression, or 6 with seconds first (`*/10 * * * * *`), in `tz`
  (IANA name, default UTC), via croniter (imported on the first `cron` schedule: a
  runtime with no such job does not pay its ~1 MiB with dateutil).
- `every`: every `everyMs`, anchored at the job's creation, so restarts never shift it.
- `at`: once; afterwards there is no next run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aisopod.catalogue.cron import AtSchedule, CronSchedule, EverySchedule
from aisopod.errors import InvalidParams

Schedule = CronSchedule | EverySchedule | AtSchedule


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidParams(f"unknown time zone {tz!r}", errors=[{"loc": ["tz"]}]) from None


def validate(schedule: Schedule) -> None:
    """INVALID_PARAMS for what the catalogue's shape check cannot see."""
    if isinstance(schedule, CronSchedule):
        from croniter import croniter

        _zone(schedule.tz)
        six = len(schedule.expr.split()) == 6
        if not croniter.is_valid(schedule.expr, second_at_beginning=six):
            raise InvalidParams(
                f"invalid cron expression {schedule.expr!r}", errors=[{"loc": ["expr"]}]
            )


def next_run_ms(schedule: Schedule, *, after_ms: int, anchor_ms: int, fired: bool) -> int | None:
    """The first run time strictly after `after_ms` (epoch ms), or None when there is none.

    `anchor_ms`: the job's creation (the `every` grid); `fired`: an `at` job already ran.
    """
    if isinstance(schedule, AtSchedule):
        return None if fired else int(schedule.at.timestamp() * 1000)
    if isinstance(schedule, EverySchedule):
        step = schedule.every_ms
        if after_ms < anchor_ms:
            return anchor_ms + step
        return anchor_ms + ((after_ms - anchor_ms) // step + 1) * step
    from croniter import croniter

    zone = _zone(schedule.tz)
    start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(zone)
    six = len(schedule.expr.split()) == 6
    following = croniter(schedule.expr, start, second_at_beginning=six).get_next(datetime)
    return int(following.timestamp() * 1000)
