"""The agent-facing methods of the runtime: providers, agents, runs and chat, sessions, tools,
exec approvals, models and voice wake. `build_agent_methods(host)` builds the parts, starts their
background work (run board and reaper, lease refresher, abort listener, approval sweeper,
provider rebuilds on config changes, the model-list refresher) with drain/stop hooks, and
returns the handlers.
"""

from __future__ import annotations

from aisopod.config.model import GatewayConfig
from aisopod.host import ServiceHost
from aisopod.rpc import Handler
from aisopod_runtime.agent_files import AgentFiles, agent_file_handlers
from aisopod_runtime.agents import AgentStore, agent_handlers
from aisopod_runtime.approvals import ApprovalService, approval_handlers
from aisopod_runtime.chat import chat_handlers
from aisopod_runtime.compaction import Compactor, compaction_handlers
from aisopod_runtime.heartbeat.inbox import SystemEventInbox
from aisopod_runtime.models import ModelCatalog, model_handlers
from aisopod_runtime.node_approvals import node_approval_handlers
from aisopod_runtime.providers import ProviderRegistry
from aisopod_runtime.runner import RunManager
from aisopod_runtime.runs import RunStore
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.session_methods import session_handlers
from aisopod_runtime.sessions import SessionStore
from aisopod_runtime.tools import build_registry
from aisopod_runtime.tools.methods import tool_handlers
from aisopod_runtime.transcripts import TranscriptStore
from aisopod_runtime.usage import UsageService, usage_handlers
from aisopod_runtime.voicewake import Voicewake, voicewake_handlers

LATE_RUNS_WAIT_S = 10.0
"""How long runs that started while the runtime drained may finish once it takes no more
requests (`drained`), before `stop` ends them as errors."""


def build_providers(host: ServiceHost) -> ProviderRegistry:
    """The live providers of the host's configuration (runs use them; status reports them)."""
    return ProviderRegistry(host.config.current.models, host.config.snapshot.unusable_providers)


async def build_agent_methods(
    host: ServiceHost, providers: ProviderRegistry | None = None
) -> dict[str, Handler]:
    config = host.config
    providers = providers or build_providers(host)
    tools, _ = build_registry()
    agents_kv = await host.kv("agents")
    parts = RuntimeService(
        host=host,
        agents=AgentStore(agents_kv, config),
        sessions=SessionStore(await host.kv("sessions")),
        transcripts=TranscriptStore(host.bus),
        approvals=ApprovalService(await host.kv("approvals"), host.bus),
        providers=providers,
        tools=tools,
        inbox=SystemEventInbox(await host.kv("heartbeat")),
        usage=await UsageService.create(host),
    )
    runner = RunManager(parts, RunStore(await host.kv("runs"), host.instance))
    parts.runner = runner
    parts.agent_files = AgentFiles(agents_kv, parts.agents)
    parts.compactor = Compactor(parts)

    async def on_config(new: GatewayConfig, old: GatewayConfig) -> None:
        # On every change, not only of `models`: the entries left out as invalid change with
        # the stored document. `apply` leaves alone what did not change.
        providers.apply(new.models, config.snapshot.unusable_providers)
        await providers.close_retired()

    config.on_change(on_config)
    # After on_config: the refresher reads the providers that listener rebuilds.
    catalog = ModelCatalog(parts, await host.kv("models"))
    config.on_change(catalog.on_config)
    await parts.agents.ensure_default()
    await parts.sessions.start()
    await parts.approvals.start()
    await runner.start()
    host.add_ready_check("runs", lambda: runner.board.ready)
    await catalog.start()

    async def drain() -> None:
        await runner.drain(min(host.settings.drain_timeout_s, 25.0))

    async def drained() -> None:
        # A run an edge sent between `drain` and the end of the requests: its last chance
        # to finish before `stop` ends it (nothing new arrives by now).
        await runner.drain(LATE_RUNS_WAIT_S)

    async def stop() -> None:
        await catalog.stop()
        await runner.stop()
        await parts.approvals.stop()
        await parts.sessions.stop()
        await providers.close()

    host.on_drain(drain)
    host.on_drained(drained)
    host.on_stop(stop)
    return {
        **agent_handlers(parts.agents),
        **chat_handlers(parts),
        **session_handlers(parts),
        **compaction_handlers(parts),
        **agent_file_handlers(parts.agent_files),
        **tool_handlers(parts),
        **approval_handlers(parts.approvals),
        **node_approval_handlers(parts.approvals.node_policies),
        **model_handlers(catalog),
        **voicewake_handlers(Voicewake(agents_kv, host.bus)),
        **usage_handlers(parts, parts.usage),
    }
