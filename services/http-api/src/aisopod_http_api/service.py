"""The live parts of one http-api process, made at start and shared by every route.

Routes reach them through `app.state.api` (FastAPI dependency `api_of`) or, for the raw
fast path, a direct reference; requests only arrive after `start()` (uvicorn serves once
the lifespan has started).
"""

from __future__ import annotations

from fastapi import Request

from aisopod.config.model import GatewayConfig
from aisopod.dedupe import Deduper
from aisopod.host import ServiceHost
from aisopod_http_api.agentchat import AgentChat
from aisopod_http_api.agentturn import AgentTurns
from aisopod_http_api.canvasfiles import CanvasFiles
from aisopod_http_api.edgereads import HttpEdgeReads
from aisopod_http_api.proxy import ChatProxy
from aisopod_http_api.responses.store import ResponseStore
from aisopod_http_api.runevents import RunEvents
from aisopod_http_api.upstream.pool import UpstreamPool
from aisopod_http_api.upstream.targets import ModelTables


class HttpApi:
    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self.pool = UpstreamPool()
        self.edge_reads = HttpEdgeReads(host)
        # Discovered ids are routable too (what /v1/models lists, /v1/chat/completions takes).
        self.tables = ModelTables(
            lambda: self.host.config.current,
            self.edge_reads.discovered_ids,
            self.edge_reads.discoveries_version,
            lambda: self.host.config.snapshot.unusable_providers,
        )
        self.proxy = ChatProxy(self.pool)

    @property
    def config(self) -> GatewayConfig:
        return self.host.config.current

    def agent_timeout_ms(self) -> int:
        return self.config.models.agents.timeout_ms

    async def start(self) -> None:
        self.events = RunEvents(self.host.bus)
        await self.events.start()
        self.turns = AgentTurns(self.host.bus, self.events)
        self.agent_chat = AgentChat(self.host.bus, self.turns)
        self.canvas = CanvasFiles(await self.host.object_store("canvas"))
        await self.canvas.start()
        # Accepted webhook deliveries (redelivery dedupe), looked up once, not per hook.
        self.hook_deliveries = Deduper(await self.host.kv("hooks"), instance=self.host.instance)
        self.responses = ResponseStore(await self.host.kv("responses"))
        await self.edge_reads.start()

    async def stop(self) -> None:
        await self.edge_reads.stop()
        await self.canvas.stop()
        await self.events.stop()
        await self.pool.close()


def api_of(request: Request) -> HttpApi:
    """FastAPI dependency: this process's live parts."""
    api: HttpApi = request.app.state.api
    return api
