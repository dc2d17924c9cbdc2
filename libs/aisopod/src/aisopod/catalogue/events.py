"""Who receives each server-pushed event (docs/protocol/websocket.md). Pure data, one rule.

Default deny: an event without an audience rule reaches admins only. Subscriptions can only
narrow what `event_visible` allows, never widen it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aisopod.scopes import Requirement, Role, allows


@dataclass(frozen=True, slots=True)
class EventAudience:
    """The audience rule of one event.

    `requirements`: any one of them admits a connection (a scope, the node role, or ANY).
    `connection_only`: addressed to one socket by the gateway itself (the new socket, the
    clients of a stopping replica, the target node); never fanned out, so `event_visible`
    is False for it. `droppable`: may be skipped for a slow consumer; `droppable_states`
    makes only payloads whose `state` is listed droppable (chat.event deltas).
    `session_subscribed_nodes`: nodes subscribed to the payload's `sessionKey` also receive it.
    `origin_only_streams`: payloads whose `stream` is listed go only to the connection that
    started the run (agent.event `tool`).
    """

    requirements: tuple[Requirement, ...]
    connection_only: bool = False
    droppable: bool = False
    droppable_states: frozenset[str] = frozenset()
    session_subscribed_nodes: bool = False
    origin_only_streams: frozenset[str] = frozenset()

    def admits(self, role: str, scopes: Iterable[str]) -> bool:
        """True when a principal with this role and these scopes meets one requirement."""
        held = tuple(scopes)
        return any(allows(role, held, req) for req in self.requirements)

    def is_droppable(self, payload: Mapping[str, object] | None = None) -> bool:
        """Whether this event (with this payload) may be skipped for a slow consumer."""
        if self.droppable:
            return True
        return payload is not None and payload.get("state") in self.droppable_states

    def origin_only(self, payload: Mapping[str, object] | None) -> bool:
        """Whether this payload goes only to the connection that started its run."""
        return payload is not None and payload.get("stream") in self.origin_only_streams


ADMIN_ONLY = EventAudience(requirements=(Requirement.ADMIN,))

_READ = EventAudience(requirements=(Requirement.READ,))
_APPROVALS = EventAudience(requirements=(Requirement.APPROVALS,))
_PAIRING = EventAudience(requirements=(Requirement.PAIRING,))
_ADDRESSED = EventAudience(requirements=(Requirement.ANY,), connection_only=True)

EVENT_AUDIENCE: Mapping[str, EventAudience] = MappingProxyType(
    {
        "connect.challenge": _ADDRESSED,
        "tick": EventAudience(requirements=(Requirement.ANY,), droppable=True),
        "shutdown": _ADDRESSED,
        "presence.changed": EventAudience(requirements=(Requirement.READ,), droppable=True),
        "health.changed": _READ,
        "agent.event": EventAudience(
            requirements=(Requirement.READ,), origin_only_streams=frozenset({"tool"})
        ),
        "chat.event": EventAudience(
            requirements=(Requirement.READ,),
            droppable_states=frozenset({"delta"}),
            session_subscribed_nodes=True,
        ),
        "cron.event": _READ,
        "heartbeat": _READ,
        "config.changed": _READ,
        "exec.approval.requested": _APPROVALS,
        "exec.approval.resolved": _APPROVALS,
        "device.pair.requested": _PAIRING,
        "device.pair.resolved": _PAIRING,
        "node.pair.requested": _PAIRING,
        "node.pair.resolved": _PAIRING,
        "node.invoke.request": EventAudience(
            requirements=(Requirement.NODE,), connection_only=True
        ),
        "node.event": _READ,
        "voicewake.changed": EventAudience(requirements=(Requirement.READ, Requirement.NODE)),
        "update.available": ADMIN_ONLY,
        "update.progress": ADMIN_ONLY,
    }
)


def audience_of(event_name: str) -> EventAudience:
    """The event's rule, or admins-only when it has none."""
    return EVENT_AUDIENCE.get(event_name, ADMIN_ONLY)


def event_visible(
    event_name: str,
    role: str,
    scopes: Iterable[str],
    *,
    session_subscribed: bool = False,
) -> bool:
    """Whether fan-out may deliver this event to a connection with this role and scopes.

    `session_subscribed`: the connection subscribed to the payload's session (lets nodes
    receive chat.event). Per-payload refinements (`origin_only`) are the caller's to apply.
    """
    rule = audience_of(event_name)
    if rule.connection_only:
        return False
    if rule.admits(role, scopes):
        return True
    return rule.session_subscribed_nodes and session_subscribed and role == Role.NODE
