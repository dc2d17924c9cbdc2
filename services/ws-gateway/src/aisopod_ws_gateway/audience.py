"""Who receives a broadcast event: audience rules (the catalogue) narrowed by subscriptions.

Pure. `Subscription` holds a connection's `subscribe`/`unsubscribe` state: event patterns
(NATS-style: `*` one token, `>` the rest) and optional session keys. `View` = role + scopes
+ subscription, interned so that the thousand connections sharing one view evaluate an
event name once (memo), not once each. Subscriptions only narrow: an event must first be
visible by `event_visible`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aisopod.catalogue import CATALOGUE, EVENT_AUDIENCE, event_visible
from aisopod.scopes import Requirement, Role, allows


def pattern_matches(pattern: str, name: str) -> bool:
    if pattern == ">" or pattern == name:
        return True
    want = pattern.split(".")
    have = name.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


@dataclass(frozen=True, slots=True)
class Subscription:
    """`include` None = every event; `exclude` removes names from what include admits."""

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    session_keys: frozenset[str] | None = None

    def subscribe(self, events: list[str], session_keys: list[str] | None) -> Subscription:
        added = frozenset(events)
        include = added if self.include is None else self.include | added
        keys = self.session_keys
        if session_keys is not None:
            keys = frozenset(session_keys) | (keys or frozenset())
        return Subscription(include, self.exclude - added, keys)

    def unsubscribe(self, events: list[str], session_keys: list[str] | None) -> Subscription:
        removed = frozenset(events)
        if self.include is None:
            include, exclude = None, self.exclude | removed
        else:
            include = self.include - removed
            exclude = self.exclude | (removed - self.include)
        keys = self.session_keys
        if session_keys is not None and keys is not None:
            keys = keys - frozenset(session_keys)
        return Subscription(include, exclude, keys)

    def admits(self, name: str) -> bool:
        if self.include is not None and not any(pattern_matches(p, name) for p in self.include):
            return False
        return not any(pattern_matches(p, name) for p in self.exclude)

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": sorted(self.include) if self.include is not None else [">"],
            "sessionKeys": sorted(self.session_keys) if self.session_keys is not None else None,
        }
        if self.exclude:
            out["excluded"] = sorted(self.exclude)
        return out


@dataclass(slots=True, eq=False)
class View:
    """What one kind of connection may see. Build through `views.get` (interned)."""

    role: str
    scopes: tuple[str, ...]
    subscription: Subscription
    _memo: dict[str, bool] = field(default_factory=dict)
    _allowed: dict[Requirement, bool] = field(default_factory=dict)
    features: dict[str, list[str]] | None = None
    features_json: bytes | None = None  # `features` encoded once per view, for hello

    def may(self, requirement: Requirement) -> bool:
        allowed = self._allowed.get(requirement)
        if allowed is None:
            allowed = self._allowed[requirement] = allows(self.role, self.scopes, requirement)
        return allowed

    def sees(self, name: str) -> bool:
        """Visible by audience rule and subscription (not counting per-payload rules)."""
        seen = self._memo.get(name)
        if seen is None:
            seen = self.subscription.admits(name) and (
                event_visible(name, self.role, self.scopes)
                or (self.role == Role.NODE and _node_session_event(name))
            )
            if len(self._memo) < 1024:
                self._memo[name] = seen
        return seen

    def sees_session(self, name: str, session_key: str | None) -> bool:
        """The session-key refinement: a subscription to sessions narrows session events;
        nodes receive session events only for sessions they subscribed to (so never one
        whose payload names no session)."""
        keys = self.subscription.session_keys
        if self.role == Role.NODE and _node_session_event(name):
            if event_visible(name, self.role, self.scopes):
                return keys is None or session_key in keys
            return keys is not None and session_key in keys
        if keys is None or session_key is None:
            return True
        return session_key in keys

    def methods(self) -> list[str]:
        """The catalogue methods this view may call (hello.features.methods)."""
        return [
            name
            for name, spec in CATALOGUE.items()
            if name != "connect" and allows(self.role, self.scopes, spec.requirement)
        ]

    def events(self) -> list[str]:
        """The broadcast events this view may receive (hello.features.events)."""
        return [name for name in EVENT_AUDIENCE if self.sees(name)]


def _node_session_event(name: str) -> bool:
    rule = EVENT_AUDIENCE.get(name)
    return rule is not None and rule.session_subscribed_nodes


class Views:
    """Interning of views: equal (role, scopes, subscription) share one object and memo."""

    def __init__(self) -> None:
        self._views: dict[tuple[str, tuple[str, ...], Subscription], View] = {}

    def get(self, role: str, scopes: tuple[str, ...], subscription: Subscription) -> View:
        key = (role, scopes, subscription)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 4096:  # bounded: drop the intern table, views stay valid
                self._views.clear()
            view = self._views[key] = View(role, scopes, subscription)
        return view
