"""The cached health snapshot (`health`, hello.snapshot): which services answer, how many
instances, from nats micro discovery (`$SRV.PING`), refreshed in the background so a
`health` request never waits on the network.

`health.changed` is published when the services' state changes. Every ws-gateway replica
watches, so one speaks: the replica whose instance id is the smallest among the ws-gateway
replicas that answered. A state counts only once two refreshes in a row saw it, so one late
PING reply on a busy machine does not make clients flap between healthy and not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.msg import Msg

from aisopod.services import PYTHON_SERVICES, ServiceName

if TYPE_CHECKING:
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.health")

INTERVAL_S = 5.0
UNHEALTHY_INTERVAL_S = 0.5
"""While some service is missing the snapshot is refreshed this often, so a stack that has
just come up is reported healthy within a second rather than after the next 5 s round."""
COLLECT_S = 0.25


class HealthMonitor:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.snapshot: dict[str, Any] = _snapshot({})
        self.encoded = orjson.dumps(self.snapshot)
        self._task: asyncio.Task[None] | None = None
        self.changes = ChangeDetector()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S if self.snapshot["ok"] else UNHEALTHY_INTERVAL_S)
            try:
                await self.refresh()
            except Exception as exc:  # NATS down: keep the last snapshot, marked by age
                log.warning("health refresh failed: %s", type(exc).__name__)

    async def refresh(self) -> None:
        nc = self.gateway.host.bus.nc
        counts: dict[str, set[str]] = {}
        gateways: set[str] = set()
        prefix = self.gateway.host.bus.subjects.prefix

        async def on_reply(msg: Msg) -> None:
            try:
                info = orjson.loads(msg.data)
            except ValueError:
                return
            name, instance = info.get("name"), info.get("id")
            metadata = info.get("metadata")
            if not isinstance(name, str) or not isinstance(metadata, dict):
                return
            if metadata.get("prefix") != prefix:
                return  # another deployment on the same NATS account
            counts.setdefault(name, set()).add(str(instance))
            if name == ServiceName.WS_GATEWAY.value:
                gateways.add(str(metadata.get("instance")))

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_reply)
        try:
            await nc.publish("$SRV.PING", b"", reply=inbox)
            await asyncio.sleep(COLLECT_S)
        finally:
            await sub.unsubscribe()
        # This replica answers, so it counts, even before its own PING reply is in.
        gateways.add(self.gateway.host.instance)
        own = counts.setdefault(ServiceName.WS_GATEWAY.value, set())
        if not own:
            own.add(self.gateway.host.instance)
        self.snapshot = _snapshot({name: len(ids) for name, ids in counts.items()})
        self.encoded = orjson.dumps(self.snapshot)
        speaker = min(gateways, default=None) == self.gateway.host.instance
        if self.changes.observe(self.snapshot["services"]) and speaker:
            await self.gateway.host.bus.publish_event("health.changed", self.snapshot)


class ChangeDetector:
    """Says when an observed state differs from the last settled one and has been seen on
    two observations in a row (the first observation only settles, it is no change)."""

    def __init__(self) -> None:
        self._settled: Any = None
        self._last: Any = None
        self._started = False

    def observe(self, state: Any) -> bool:
        previous, self._last = self._last, state
        if not self._started:
            self._started, self._settled = True, state
            return False
        if state == self._settled or state != previous:
            return False
        self._settled = state
        return True


def _snapshot(counts: dict[str, int]) -> dict[str, Any]:
    services = {
        service.value: {
            "ok": counts.get(service.value, 0) > 0,
            "instances": counts.get(service.value, 0),
        }
        for service in PYTHON_SERVICES
    }
    return {
        "ok": all(s["ok"] for s in services.values()),
        "ts": int(time.time() * 1000),
        "services": services,
    }
