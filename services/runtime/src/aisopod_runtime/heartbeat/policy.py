"""What a heartbeat decides without I/O: quiet hours, and what the agent's answer means."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from aisopod.config.sections.heartbeat import QuietHours, clock_minutes

OK_TOKEN = "HEARTBEAT_OK"
ACK_MAX_CHARS = 300
"""An answer holding the token and at most this much else is an acknowledgement."""
PREVIEW_CHARS = 200

Verdict = Literal["sent", "ok-empty", "ok-token"]


def in_quiet_hours(quiet: QuietHours | None, now_ms: int) -> bool:
    """Whether `now_ms` falls in the daily window (start inclusive, end exclusive)."""
    if quiet is None:
        return False
    local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(ZoneInfo(quiet.timezone))
    minute = local.hour * 60 + local.minute
    start, end = clock_minutes(quiet.start), clock_minutes(quiet.end)
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end  # over midnight


def verdict(answer: str) -> tuple[Verdict, str | None]:
    """The status of a finished heartbeat turn and, when it said something, a preview."""
    text = answer.strip()
    if not text:
        return "ok-empty", None
    if OK_TOKEN in text and len(text.replace(OK_TOKEN, "").strip()) <= ACK_MAX_CHARS:
        return "ok-token", None
    flat = " ".join(text.split())
    return "sent", flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
