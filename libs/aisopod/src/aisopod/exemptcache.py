"""Exempt verdicts of the edge check (`ratelimit.edge`), kept so that a request from an
address the rules exempt is admitted without asking ratelimit (pure, no I/O). ws-gateway
keeps them for its upgrades, http-api for every API request.

Why this stays exact: ratelimit answers `reason: exempt` from the configuration alone (the
route class the path picks, the rule's `exempt`, `limits.exemptCidrs`; no window, no
lockout is read), and its reply says which config KV revision its rules were built from
(`configRevision`). The same question under the same configuration has the same answer,
so the verdict may be given again while the caller runs that revision itself:

- only `allowed` answers with `reason: exempt` are kept, and only when their revision is
  the one the caller runs when the answer arrives (a reply without a revision, or from
  rules older or newer than ours, is used once and forgotten);
- an entry is used only while the caller still runs that revision: the first look-up
  under another revision empties the cache (and so does any applied config change,
  `clear`), so a change that removes an exemption counts the next upgrade;
- an entry is used for `max_age_s` at most (a bound should a change ever be missed);
- at most `size` entries (at least 1): a full cache forgets its oldest entry, which is also
  the one closest to its max age. A max age of 0 keeps nothing (the cache is off).

The key is a route scope and the client IP as proven, finer than ratelimit's own key (an
IPv6 /64), never coarser. The scope must pick one rule under a revision: ws-gateway gives
the upgrade path (one of a few, each in one route class); http-api, whose paths are
unbounded, the position of the route class the path falls in (aisopod/routeclass.py, the
matcher ratelimit picks the rule with). Whether an address is exempt reads only the rule
and the address, so one verdict stands for every path of its class.

docs/ws-gateway.md, "P3"; docs/http-api.md, "Exempt addresses"; docs/ratelimit.md, "The
edge check".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from aisopod.contracts.ratelimit import EdgeCheckResult

DEFAULT_SIZE = 4096
DEFAULT_MAX_AGE_S = 60.0


class ExemptCache:
    __slots__ = ("_clock", "_entries", "_revision", "max_age_s", "size")

    def __init__(
        self,
        *,
        size: int = DEFAULT_SIZE,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = max(1, size)
        self.max_age_s = max_age_s
        self._clock = clock
        # (scope, client IP) → when ratelimit's verdict arrived; insertion order is age order.
        self._entries: dict[tuple[Hashable, str], float] = {}
        self._revision: int | None = None  # the config revision every entry was given under

    def __len__(self) -> int:
        return len(self._entries)

    def admits(self, revision: int, scope: Hashable, client_ip: str) -> bool:
        """Whether ratelimit exempted this (scope, client IP) under config `revision` (the
        one the caller runs now) within the max age. The hot path: a comparison, a dict
        look-up and a clock read."""
        if revision != self._revision:
            self.clear()
            self._revision = revision
            return False
        entries = self._entries
        if not entries:
            return False
        key = (scope, client_ip)
        stored = entries.get(key)
        if stored is None:
            return False
        if self._clock() - stored >= self.max_age_s:
            del entries[key]
            return False
        return True

    def remember(
        self, revision: int, scope: Hashable, client_ip: str, result: EdgeCheckResult
    ) -> None:
        """Keep ratelimit's answer when it is an exemption decided under `revision`, the
        config revision the caller runs now that the answer arrived."""
        if not (result.allowed and result.reason == "exempt") or self.max_age_s <= 0:
            return
        if result.config_revision is None or result.config_revision != revision:
            return
        if revision != self._revision:
            self.clear()
            self._revision = revision
        entries = self._entries
        key = (scope, client_ip)
        entries.pop(key, None)  # re-inserted at the young end
        if len(entries) >= self.size:
            del entries[next(iter(entries))]
        entries[key] = self._clock()

    def clear(self) -> None:
        self._entries.clear()
