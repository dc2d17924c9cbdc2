"""Quiet hours, the verdict on an answer, and the heartbeat config section. Pure."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from aisopod.config.sections.heartbeat import HeartbeatSection, QuietHours, duration_ms
from aisopod_runtime.heartbeat.policy import in_quiet_hours, verdict


def at(local: str, zone: str) -> int:
    """Epoch ms of a local wall-clock time (`2026-12-06 23:30`) in `zone`."""
    moment = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(zone))
    return int(moment.timestamp() * 1000)


BERLIN_NIGHT = QuietHours(start="22:00", end="07:00", timezone="Europe/Berlin")
LUNCH_UTC = QuietHours(start="12:00", end="13:30")


@pytest.mark.parametrize(
    ("quiet", "local", "zone", "inside"),
    [
        (BERLIN_NIGHT, "2026-12-06 23:30", "Europe/Berlin", True),
        (BERLIN_NIGHT, "2026-12-07 06:59", "Europe/Berlin", True),
        (BERLIN_NIGHT, "2026-12-07 07:00", "Europe/Berlin", False),  # the end is open
        (BERLIN_NIGHT, "2026-12-06 22:00", "Europe/Berlin", True),  # the start is closed
        (BERLIN_NIGHT, "2026-12-06 12:00", "Europe/Berlin", False),
        # 22:30 in New York is 04:30 next morning in Berlin: quiet there.
        (BERLIN_NIGHT, "2026-12-06 22:30", "America/New_York", True),
        (BERLIN_NIGHT, "2026-07-01 21:30", "UTC", True),  # summer: 23:30 in Berlin
        (LUNCH_UTC, "2026-12-06 13:29", "UTC", True),
        (LUNCH_UTC, "2026-12-06 13:30", "UTC", False),
        (LUNCH_UTC, "2026-12-06 11:59", "UTC", False),
        (None, "2026-12-06 03:00", "UTC", False),
    ],
)
def test_quiet_hours(quiet: QuietHours | None, local: str, zone: str, inside: bool) -> None:
    assert in_quiet_hours(quiet, at(local, zone)) is inside


@pytest.mark.parametrize(
    ("answer", "status", "preview"),
    [
        ("", "ok-empty", None),
        ("   \n", "ok-empty", None),
        ("HEARTBEAT_OK", "ok-token", None),
        ("All quiet. HEARTBEAT_OK", "ok-token", None),
        ("HEARTBEAT_OK " + "x" * 301, "sent", "HEARTBEAT_OK " + "x" * 186 + "…"),
        ("The  build\nfailed.", "sent", "The build failed."),
    ],
)
def test_verdict(answer: str, status: str, preview: str | None) -> None:
    assert verdict(answer) == (status, preview)


def test_durations() -> None:
    assert duration_ms("30m") == 1_800_000
    assert duration_ms("90s") == 90_000
    assert duration_ms(" 2h ") == 7_200_000
    assert duration_ms("1d") == 86_400_000
    for bad in ("", "30", "m", "1.5h", "-1m", "30 minutes"):
        with pytest.raises(ValueError):
            duration_ms(bad)


def test_agents_follow_the_defaults() -> None:
    section = HeartbeatSection.model_validate(
        {
            "defaults": {"every": "1h", "quietHours": {"start": "22:00", "end": "07:00"}},
            "agents": {
                "main": {},
                "ops": {"every": "5m", "prompt": "check the pager"},
                "off": {"enabled": False},
            },
        }
    )
    main = section.effective("main")
    assert main is not None and main.every_ms == 3_600_000 and main.quiet_hours is not None
    ops = section.effective("ops")
    assert ops is not None and (ops.every_ms, ops.prompt) == (300_000, "check the pager")
    assert section.effective("nobody") is None
    assert [hb.agent_id for hb in section.scheduled()] == ["main", "ops"]
    assert HeartbeatSection().scheduled() == []  # no agent has a heartbeat by default


@pytest.mark.parametrize(
    "bad",
    [
        {"agents": {"main": {"every": "500ms"}}},
        {"agents": {"main": {"every": "8d"}}},
        {"defaults": {"every": "soon"}},
        {"agents": {"main": {"quietHours": {"start": "7:00", "end": "09:00"}}}},
        {"agents": {"main": {"quietHours": {"start": "09:00", "end": "09:00"}}}},
        {"agents": {"main": {"quietHours": {"start": "09:00", "end": "24:00"}}}},
        {"agents": {"main": {"quietHours": {"start": "22:00", "end": "07:00", "timezone": "X/Y"}}}},
        {"agents": {"bad id": {}}},
        {"agents": {"main": {"prompt": ""}}},
        {"agents": {"main": {"colour": "red"}}},
    ],
)
def test_bad_heartbeat_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HeartbeatSection.model_validate(bad)
