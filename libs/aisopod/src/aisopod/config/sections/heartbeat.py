"""Heartbeats: agents that wake on a schedule (docs/runtime.md, Heartbeats and wake).

An agent listed under `heartbeat.agents` gets a turn in its main session every `every`,
with `prompt` as the message and the system events queued for that session in front of it.
`quietHours` (a daily window in a time zone) skips the scheduled turns that fall inside it.
Fields an agent's entry leaves out come from `heartbeat.defaults`.
"""

from __future__ import annotations

import re
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StringConstraints, field_validator, model_validator

from aisopod.config.sections.base import Section

DEFAULT_PROMPT = (
    "This is a scheduled check-in (heartbeat). Act on the system events above, if any. "
    "If nothing needs attention, reply HEARTBEAT_OK."
)
MIN_EVERY_MS = 1_000
MAX_EVERY_MS = 7 * 86_400_000
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

Duration = Annotated[str, StringConstraints(max_length=32)]
AgentKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
]


def duration_ms(text: str) -> int:
    """`"30m"` → 1 800 000. Units ms, s, m, h, d; one number and one unit."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30m, 90s or 2h")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def clock_minutes(text: str) -> int:
    """`"22:30"` → 1350 (minutes after midnight)."""
    match = _CLOCK.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like 07:00 or 22:30")
    return int(match.group(1)) * 60 + int(match.group(2))


class QuietHours(Section):
    """From `start` (inclusive) to `end` (exclusive), local time in `timezone`; a window
    whose end is before its start runs over midnight (22:00 → 07:00)."""

    start: str = Field(description="HH:MM, 24-hour clock")
    end: str = Field(description="HH:MM, 24-hour clock")
    timezone: str = Field("UTC", description="IANA time zone name, e.g. Europe/Berlin")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        clock_minutes(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quietHours start and end are equal: an empty window")
        return self


def _check_every(value: str | None) -> str | None:
    if value is None:
        return None
    ms = duration_ms(value)
    if not MIN_EVERY_MS <= ms <= MAX_EVERY_MS:
        raise ValueError(f"every must be between 1s and 7d, not {value!r}")
    return value


class HeartbeatDefaults(Section):
    every: Duration = Field("30m", description="interval: 90s, 30m, 2h, 1d (1 s to 7 d)")
    prompt: str = Field(DEFAULT_PROMPT, min_length=1, max_length=16 * 1024)
    quiet_hours: QuietHours | None = None
    timeout_ms: int = Field(
        300_000, ge=1_000, le=3_600_000, description="how long one heartbeat turn may take"
    )

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        _check_every(value)
        return value


class AgentHeartbeat(Section):
    """One agent's heartbeat; unset fields follow `heartbeat.defaults`."""

    enabled: bool = True
    every: Duration | None = None
    prompt: str | None = Field(None, min_length=1, max_length=16 * 1024)
    quiet_hours: QuietHours | None = None
    timeout_ms: int | None = Field(None, ge=1_000, le=3_600_000)

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        return _check_every(value)


class EffectiveHeartbeat(Section):
    """An agent's heartbeat with the defaults filled in (not part of the document)."""

    agent_id: str
    enabled: bool
    every: str
    every_ms: int
    prompt: str
    quiet_hours: QuietHours | None
    timeout_ms: int


class HeartbeatSection(Section):
    defaults: HeartbeatDefaults = Field(default_factory=HeartbeatDefaults)
    agents: dict[AgentKey, AgentHeartbeat] = Field(
        default_factory=dict, description="agent id → its heartbeat; agents not listed have none"
    )
    run_history: int = Field(50, ge=1, le=1000, description="run records kept per agent")

    def effective(self, agent_id: str) -> EffectiveHeartbeat | None:
        """The agent's heartbeat with defaults applied; None when it has none."""
        own = self.agents.get(agent_id)
        if own is None:
            return None
        every = own.every or self.defaults.every
        return EffectiveHeartbeat(
            agent_id=agent_id,
            enabled=own.enabled,
            every=every,
            every_ms=duration_ms(every),
            prompt=own.prompt or self.defaults.prompt,
            quiet_hours=own.quiet_hours or self.defaults.quiet_hours,
            timeout_ms=own.timeout_ms or self.defaults.timeout_ms,
        )

    def scheduled(self) -> list[EffectiveHeartbeat]:
        """Every agent whose heartbeat is enabled, by agent id."""
        out = [self.effective(agent_id) for agent_id in sorted(self.agents)]
        return [hb for hb in out if hb is not None and hb.enabled]
