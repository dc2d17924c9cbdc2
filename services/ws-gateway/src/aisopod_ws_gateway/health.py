"""The cached health snapshot (`health`, hello.snapshot): which services answer, how many
instances, from nats micro discovery (`$SRV.PING`), refreshed in the background so a
`health` request never waits on the network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.msg import Msg

from aisopod.services import PYTHON_SERVICES

if TYPE_CHECKING:
    from aisopod_ws_gateway.gateway import Gateway

log = logging.getLogger("aisopod.ws.health")

INTERVAL_S = 5.0
COLLECT_S = 0.25


class HealthMonitor:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.snapshot: dict[str, Any] = _snapshot({})
        self.encoded = orjson.dumps(self.snapshot)
        self._task: asyncio.Task[None] | None = None

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
            await asyncio.sleep(INTERVAL_S)
            try:
                await self.refresh()
            except Exception as exc:  # NATS down: keep the last snapshot, marked by age
                log.warning("health refresh failed: %s", type(exc).__name__)

    async def refresh(self) -> None:
        nc = self.gateway.host.bus.nc
        counts: dict[str, set[str]] = {}

        async def on_reply(msg: Msg) -> None:
            try:
                info = orjson.loads(msg.data)
            except ValueError:
                return
            name, instance = info.get("name"), info.get("id")
            if isinstance(name, str):
                counts.setdefault(name, set()).add(str(instance))

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=on_reply)
        try:
            await nc.publish("$SRV.PING", b"", reply=inbox)
            await asyncio.sleep(COLLECT_S)
        finally:
            await sub.unsubscribe()
        self.snapshot = _snapshot({name: len(ids) for name, ids in counts.items()})
        self.encoded = orjson.dumps(self.snapshot)


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
