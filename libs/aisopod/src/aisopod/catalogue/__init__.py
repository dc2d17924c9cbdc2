"""The RPC method catalogue: every method's owner, requirement and params/result models.

Pure data, no I/O. Edges check requirements and validate params from it; owners register
their handlers from `methods_for(owner)`. A method not in the catalogue is not callable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from aisopod.catalogue import (
    agentfiles,
    agents,
    approvals,
    chat,
    config,
    cron,
    devices,
    execnode,
    heartbeat,
    models,
    nodes,
    sessions,
    skillinstall,
    system,
    tools,
    updates,
    usage,
)
from aisopod.catalogue.events import (
    ADMIN_ONLY,
    EVENT_AUDIENCE,
    EventAudience,
    audience_of,
    event_visible,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.services import ServiceName

DOMAINS = (
    system,
    agents,
    agentfiles,
    chat,
    sessions,
    nodes,
    config,
    cron,
    heartbeat,
    models,
    skillinstall,
    devices,
    approvals,
    execnode,
    updates,
    tools,
    usage,
)


def build_catalogue(specs: Iterable[MethodSpec]) -> Mapping[str, MethodSpec]:
    """A read-only name → spec mapping; a duplicated name is a bug, so it raises."""
    out: dict[str, MethodSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"method {spec.name!r} is defined twice in the catalogue")
        out[spec.name] = spec
    return MappingProxyType(out)


CATALOGUE: Mapping[str, MethodSpec] = build_catalogue(
    spec for domain in DOMAINS for spec in domain.METHODS
)


def get_method(name: str) -> MethodSpec | None:
    """The spec of `name`, or None when it is not in the catalogue (METHOD_NOT_FOUND)."""
    return CATALOGUE.get(name)


def methods_for(owner: ServiceName) -> list[MethodSpec]:
    """Every method `owner` must handle, in catalogue order."""
    return [spec for spec in CATALOGUE.values() if spec.owner == owner]


__all__ = [
    "ADMIN_ONLY",
    "CATALOGUE",
    "EVENT_AUDIENCE",
    "EventAudience",
    "MethodSpec",
    "audience_of",
    "build_catalogue",
    "event_visible",
    "get_method",
    "methods_for",
]
