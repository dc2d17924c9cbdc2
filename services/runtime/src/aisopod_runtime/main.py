"""Wiring of the runtime service: settings, host, app. Behaviour lives in sibling modules.

The runtime's methods come from three modules: `agent_methods` (providers, agents, chat,
sessions, tools, approvals), `operator_methods` (config, cron, skills, status, logs,
updates, plugins, wizard) and `heartbeat` (wake, system events, heartbeats).
`RpcServer.start` refuses to start unless together they serve exactly the runtime's
catalogue methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aisopod.host import ServiceHost
from aisopod.probeserver import ProbeApp, serve
from aisopod.rpc import Handler
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_runtime import __version__
from aisopod_runtime.agent_methods import build_agent_methods, build_providers
from aisopod_runtime.heartbeat.methods import build_heartbeat
from aisopod_runtime.operator_methods import build_operator_methods


async def build_handlers(host: ServiceHost) -> dict[str, Handler]:
    providers = build_providers(host)  # one registry: the runs' and the one status reports
    parts = [
        await build_agent_methods(host, providers),
        await build_operator_methods(host, providers=providers),
        await build_heartbeat(host),
    ]
    handlers: dict[str, Handler] = {}
    for part in parts:
        overlap = sorted(set(handlers) & set(part))
        if overlap:
            raise RuntimeError(f"methods served twice: {overlap}")
        handlers |= part
    return handlers


@asynccontextmanager
async def setup(host: ServiceHost) -> AsyncIterator[None]:
    await host.rpc.start(await build_handlers(host))
    yield


def build(settings: ServiceSettings | None = None) -> tuple[ServiceHost, ProbeApp]:
    """The host and its HTTP face (probes only: clients reach the runtime over NATS)."""
    settings = settings or ServiceSettings(service=ServiceName.RUNTIME.value)
    host = ServiceHost(settings, ServiceName.RUNTIME, __version__)
    return host, ProbeApp(host, setup)


def main() -> None:
    host, app = build()
    serve(host, app)
