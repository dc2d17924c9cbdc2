"""`models.voicewake`: the wake words of voice clients, cluster-wide.

Stored in KV `agents` under `meta.voicewake` (agent keys are `agent.<id>`, so the two
never collide). Without `triggers` the method reads; with them it replaces the list
(trimmed, duplicates dropped, order kept) and broadcasts `voicewake.changed {triggers}`.
"""

from __future__ import annotations

from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.bus import Bus
from aisopod.catalogue.models import VoicewakeParams, VoicewakeResult
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.kvview import get_json

KEY = "meta.voicewake"
DEFAULT_TRIGGERS = ("aisopod",)


class Voicewake:
    def __init__(self, kv: KeyValue, bus: Bus) -> None:
        self.kv = kv
        self.bus = bus

    async def get(self) -> list[str]:
        found = await get_json(self.kv, KEY)
        return list(found[0].get("triggers", [])) if found else list(DEFAULT_TRIGGERS)

    async def set(self, triggers: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(t.strip() for t in triggers if t.strip()))
        await self.kv.put(KEY, codec.dumps({"triggers": cleaned}))
        await self.bus.publish_event("voicewake.changed", {"triggers": cleaned})
        return cleaned


def voicewake_handlers(voicewake: Voicewake) -> dict[str, Handler]:
    async def handle(params: VoicewakeParams, ctx: CallContext) -> VoicewakeResult:
        if params.triggers is None:
            return VoicewakeResult(triggers=await voicewake.get())
        return VoicewakeResult(triggers=await voicewake.set(params.triggers))

    return {"models.voicewake": handle}
