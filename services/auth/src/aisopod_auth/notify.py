"""What the auth service tells the rest of the gateway: pairing events, closing orders,
and that verified credentials may be stale.

Pairing events go into the EVENTS stream (`device.pair.requested/.resolved`,
`node.pair.requested/.resolved`; audience operator.pairing). Closing orders go on
`<prefix>.control.connections.close`, heard by every ws-gateway replica, which closes the
live connections that match (a revoked, rotated or removed credential). `<prefix>.control.
auth.changed` (`AuthChanged`) tells the edges that keep verified credentials (ws-gateway,
http-api) to drop them: on a pairing decision (a device's or node's grant may have
changed), a change of the `auth` config section, and when this process starts (its
`generation`, a fresh random value also carried by every verification reply: a restart
with another admin token thereby voids what the previous process verified) or stops. A
closing order voids them too (the edges listen to both).
"""

from __future__ import annotations

import logging
import secrets
from typing import Literal

from aisopod.bus import Bus
from aisopod.compat.natspy import flush_in_order
from aisopod.contracts.auth import AuthChanged, CloseConnections
from aisopod_auth import devices, nodes
from aisopod_auth.records import DevicePairing, NodePairing

log = logging.getLogger("aisopod.auth.notify")

Decision = Literal["approved", "rejected"]


class Notifier:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.close_subject = bus.subjects.control("connections.close")
        self.changed_subject = bus.subjects.control("auth.changed")
        self.generation = secrets.token_hex(8)

    async def changed(self, reason: str) -> None:
        """Tell the edges to drop verified credentials. Published before the caller
        replies (same NATS connection, so in order with the reply for anyone hearing
        both)."""
        change = AuthChanged(reason=reason, generation=self.generation)
        await self.bus.publish(self.changed_subject, change.model_dump(by_alias=True))

    async def device_requested(self, request: DevicePairing) -> None:
        await self.bus.publish_event("device.pair.requested", devices.request_view(request))

    async def device_resolved(self, request: DevicePairing, decision: Decision) -> None:
        await self.changed(f"device pairing {decision}")
        await self.bus.publish_event(
            "device.pair.resolved",
            {"requestId": request.request_id, "deviceId": request.device_id, "decision": decision},
        )

    async def node_requested(self, request: NodePairing) -> None:
        await self.bus.publish_event("node.pair.requested", nodes.request_view(request))

    async def node_resolved(self, request: NodePairing, decision: Decision) -> None:
        await self.changed(f"node pairing {decision}")
        await self.bus.publish_event(
            "node.pair.resolved",
            {"requestId": request.request_id, "nodeId": request.node_id, "decision": decision},
        )

    async def close(self, order: CloseConnections) -> None:
        """Tell every ws-gateway to close the matching connections (core NATS; flushed so
        the order is out before the caller replies)."""
        await self.bus.publish(
            self.close_subject, order.model_dump(by_alias=True, exclude_none=True)
        )
        await flush_in_order(self.bus.nc, 2)
        log.info(
            "ordered connections closed",
            extra={"deviceId": order.device_id, "role": order.role, "reason": order.reason},
        )
