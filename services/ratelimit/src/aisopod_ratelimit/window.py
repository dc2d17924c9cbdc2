"""The sliding log of one key: the times of the units it was admitted in the last window.

Pure. Exact by construction: a unit is admitted iff fewer than `limit` units were admitted
in `(now - window, now]`. The log never holds more than `limit` stamps (only admitted
units are logged), kept as a compact `array('q')` of milliseconds (8 bytes a stamp, no
per-stamp object), so memory per key is `O(min(limit, admitted in window))`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tally:
    """The outcome of one look at a window (all times in ms)."""

    allowed: bool
    remaining: int
    reset_ms: int  # until the oldest admitted unit leaves the window (0 when empty)
    retry_after_ms: int  # until enough units leave for the request to fit (0 if allowed)


class SlidingLog:
    __slots__ = ("stamps", "touched")

    def __init__(self) -> None:
        self.stamps = array("q")
        self.touched = 0  # the last time anyone asked about this key (LRU and cleanup)

    def __len__(self) -> int:
        return len(self.stamps)

    def prune(self, now: int, window: int) -> int:
        """Drop stamps that left the window; the count still inside."""
        stamps = self.stamps
        if stamps and stamps[0] <= now - window:
            del stamps[: bisect_right(stamps, now - window)]
        return len(stamps)

    def _now(self, now: int) -> int:
        # A wall clock may step back; stamps stay sorted and a step back never frees a
        # slot early (it only delays the frees by the size of the step).
        stamps = self.stamps
        return stamps[-1] if stamps and stamps[-1] > now else now

    def take(self, now: int, limit: int, window: int, cost: int = 1) -> Tally:
        """Admit `cost` units if they fit, logging them; else say when they would."""
        now = self._now(now)
        self.touched = now
        used = self.prune(now, window)
        if used + cost <= limit:
            self.stamps.extend([now] * cost)
            used += cost
            return Tally(True, limit - used, self.stamps[0] + window - now, 0)
        return self._refused(now, limit, window, cost)

    def peek(self, now: int, limit: int, window: int, cost: int = 1) -> Tally:
        """What `take` would answer, logging nothing."""
        now = self._now(now)
        used = self.prune(now, window)
        if used + cost <= limit:
            return Tally(True, limit - used, self._reset(now, window), 0)
        return self._refused(now, limit, window, cost)

    def _reset(self, now: int, window: int) -> int:
        return self.stamps[0] + window - now if self.stamps else 0

    def _refused(self, now: int, limit: int, window: int, cost: int) -> Tally:
        stamps = self.stamps
        if cost > limit:  # can never fit: say "a whole window", the caller must lower cost
            retry = window
        else:
            # It fits once the (used + cost - limit) oldest stamps have left the window.
            retry = stamps[len(stamps) + cost - limit - 1] + window - now
        return Tally(False, max(0, limit - len(stamps)), self._reset(now, window), retry)
