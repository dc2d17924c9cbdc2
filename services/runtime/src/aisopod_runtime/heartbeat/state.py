"""The live switch and the last heartbeats, in KV `heartbeat`.

`switch` = `{enabled, by, atMs}` (absent: on), written by `set-heartbeats` and read by
every replica before it starts a heartbeat turn, so one call switches the whole cluster and
a restart does not switch heartbeats back on behind an operator's back. `last.<agentId>` =
the agent's newest heartbeat event.
"""

from __future__ import annotations

from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.heartbeat import HeartbeatEvent
from aisopod.jsread import snapshot
from aisopod_runtime.kvview import get_json

SWITCH_KEY = "switch"


def last_key(agent_id: str) -> str:
    return f"last.{agent_id}"


class HeartbeatState:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def enabled(self) -> bool:
        found = await get_json(self.kv, SWITCH_KEY)
        return True if found is None else bool(found[0].get("enabled", True))

    async def set_enabled(self, enabled: bool, by: str, now_ms: int) -> None:
        await self.kv.put(SWITCH_KEY, codec.dumps({"enabled": enabled, "by": by, "atMs": now_ms}))

    async def record(self, event: HeartbeatEvent) -> None:
        data = codec.dumps(event.model_dump(by_alias=True, mode="json"))
        await self.kv.put(last_key(event.agent_id), data)

    async def last_of_each(self) -> dict[str, HeartbeatEvent]:
        """Agent id → its newest heartbeat event."""
        entries = await snapshot(self.kv, "last.*")
        events = [
            HeartbeatEvent.model_validate(codec.loads(entry.value))
            for entry in entries
            if entry.value
        ]
        return {event.agent_id: event for event in events}
