"""The runtime's live parts in one place, handed to tools and method handlers.

Built once by `agent_methods.build_agent_methods`; `runner` is set after construction because
the runner itself needs the tools that need it (sessions_send starts runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aisopod.config.model import GatewayConfig
from aisopod.host import ServiceHost

if TYPE_CHECKING:
    from aisopod_runtime.agent_files import AgentFiles
    from aisopod_runtime.agents import AgentStore
    from aisopod_runtime.approvals import ApprovalService
    from aisopod_runtime.compaction import Compactor
    from aisopod_runtime.heartbeat.inbox import SystemEventInbox
    from aisopod_runtime.providers import ProviderRegistry
    from aisopod_runtime.runner import RunManager
    from aisopod_runtime.sessions import SessionStore
    from aisopod_runtime.tools.registry import ToolRegistry
    from aisopod_runtime.transcripts import TranscriptStore
    from aisopod_runtime.usage import UsageService


@dataclass(slots=True)
class RuntimeService:
    host: ServiceHost
    agents: AgentStore
    sessions: SessionStore
    transcripts: TranscriptStore
    approvals: ApprovalService
    providers: ProviderRegistry
    tools: ToolRegistry
    inbox: SystemEventInbox
    """Each session's queued system events, handed to its next turn (heartbeat/inbox.py)."""
    usage: UsageService
    runner: RunManager | None = None
    agent_files: AgentFiles | None = None
    compactor: Compactor | None = None

    @property
    def config(self) -> GatewayConfig:
        return self.host.config.current

    def require_agent_files(self) -> AgentFiles:
        if self.agent_files is None:
            raise RuntimeError("the agent files are not set up")
        return self.agent_files

    def require_compactor(self) -> Compactor:
        if self.compactor is None:
            raise RuntimeError("the compactor is not set up")
        return self.compactor

    def require_runner(self) -> RunManager:
        if self.runner is None:
            raise RuntimeError("the run manager is not started")
        return self.runner
