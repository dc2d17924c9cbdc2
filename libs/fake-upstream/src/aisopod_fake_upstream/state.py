"""What the fake remembers between requests: recorded requests, programmed rules, failure counts.

Touched only from the server's event loop, so no locks; tests read it over HTTP.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, Field

from .behaviour import Behaviour


class ControlRule(Behaviour):
    """Body of `POST /_control`: a behaviour plus which requests it applies to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: int | None = Field(default=None, ge=1)
    """Apply to this many matching requests, then expire; forever when absent."""
    match: str | None = None
    """Apply only when the last user message contains this text."""

    def behaviour(self) -> Behaviour:
        fields = self.model_fields_set & set(Behaviour.model_fields)
        return Behaviour.model_validate({name: getattr(self, name) for name in fields})


@dataclass(slots=True)
class _LiveRule:
    behaviour: Behaviour
    match: str | None
    remaining: int | None


class UpstreamState:
    def __init__(self, max_recorded: int) -> None:
        self._recorded: deque[dict[str, Any]] = deque(maxlen=max_recorded)
        self._rules: list[_LiveRule] = []
        self._failures: dict[str, int] = {}
        self.active_responses = 0
        """Slow or broken responses being played right now."""
        self.client_disconnects = 0
        """Played responses whose client went away before the end."""

    # recorded requests

    def record(self, path: str, headers: dict[str, str], body: Any) -> dict[str, Any]:
        """Keep a request; the entry gets `usage` once the answer is planned (None for a
        failure, or a stream that asked for none)."""
        entry = {"time": time.time(), "path": path, "headers": headers, "body": body, "usage": None}
        self._recorded.append(entry)
        return entry

    def recorded(self) -> list[dict[str, Any]]:
        return list(self._recorded)

    def clear_recorded(self) -> None:
        self._recorded.clear()

    def stats(self) -> dict[str, int]:
        return {
            "active_responses": self.active_responses,
            "client_disconnects": self.client_disconnects,
            "recorded": len(self._recorded),
        }

    # programmed rules

    def add_rule(self, rule: ControlRule) -> None:
        self._rules.append(_LiveRule(rule.behaviour(), rule.match, rule.times))

    def rules(self) -> list[dict[str, Any]]:
        return [
            {
                **rule.behaviour.model_dump(exclude_unset=True),
                "match": rule.match,
                "remaining": rule.remaining,
            }
            for rule in self._rules
        ]

    def take_rule(self, text: str) -> Behaviour | None:
        """The behaviour of the first rule matching `text`, counting one use of it."""
        if not self._rules:
            return None
        for index, rule in enumerate(self._rules):
            if rule.match is not None and rule.match not in text:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self._rules[index]
            return rule.behaviour
        return None

    def count_attempt(self, key: str) -> int:
        """How many times a request with this key was seen, this one included."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        return count

    def reset_control(self) -> None:
        self._rules.clear()
        self._failures.clear()
