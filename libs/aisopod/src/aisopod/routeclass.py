"""Which route class of `limits.routes` a request path falls in (pure, no I/O).

One implementation for the two that must agree: ratelimit picks the rule of the edge check
(`ratelimit.edge`) with it, and http-api keys the exempt verdicts it keeps (aisopod/
exemptcache.py) by the class it names. The first class that covers the path wins; a
prefix covers segment-wise (`/ws` covers `/ws` and `/ws/x`, not `/wsx`), an exact path
covers itself only. A query string is not part of the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from aisopod.config.sections.limits import LimitsSection


def covers(pattern: str, exact: bool, path: str) -> bool:
    """Whether a route class (`pattern`, the prefix or exact path) covers `path`."""
    if exact or path == pattern:
        return path == pattern
    return pattern == "/" or path.startswith(pattern.rstrip("/") + "/")


@dataclass(frozen=True, slots=True)
class RouteClasses:
    """The route classes of one configuration, in order: (pattern, exact)."""

    classes: tuple[tuple[str, bool], ...]

    @classmethod
    def from_section(cls, section: LimitsSection) -> RouteClasses:
        return cls(tuple((rc.pattern, rc.path is not None) for rc in section.routes))

    def index(self, path: str) -> int | None:
        """The position in `limits.routes` of the first class covering `path`, or None
        (no class: the edge check counts nothing)."""
        path = path.partition("?")[0]
        for position, (pattern, exact) in enumerate(self.classes):
            if covers(pattern, exact, path):
                return position
        return None
