"""Wiring of the ws-gateway service: settings, host, gateway, listener, signals.

The socket is served by our own asyncio protocol on websockets' sans-I/O core, not by
uvicorn (docs/ws-gateway.md weighs the two with measurements); /health, /ready and
/metrics are answered on the same port.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from aisopod.host import ServiceHost
from aisopod.memory import settle_after_start
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_ws_gateway import __version__
from aisopod_ws_gateway.service import Gateway, WsGatewaySettings

log = logging.getLogger("aisopod.ws")


def build(settings: ServiceSettings | None = None) -> ServiceHost:
    settings = settings or WsGatewaySettings(service=ServiceName.WS_GATEWAY.value)
    return ServiceHost(settings, ServiceName.WS_GATEWAY, __version__)


async def run(
    host: ServiceHost, stop: asyncio.Event | None = None, *, signals: bool = True
) -> None:
    """Serve until `stop` is set or SIGTERM/SIGINT (then drain first)."""
    stop = stop or asyncio.Event()
    # A restart order (update.run) stops it like SIGTERM; a second signal stops at once.
    host.stop_on_signals(stop.set, stop.set, signals=signals)
    async with host:
        gateway = Gateway(host)
        host.gateway = gateway  # type: ignore[attr-defined]  # for in-process tests
        await gateway.start()
        try:
            server = await gateway.listen(host.settings.host, host.settings.port)
            port = server.sockets[0].getsockname()[1]
            log.info("listening", extra={"port": port})
            # Start-up's garbage back to the kernel, as every other service does (memory.py).
            settle_after_start()
            await stop.wait()
        finally:
            await gateway.stop()


def main() -> None:
    host = build()
    try:
        import uvloop

        uvloop.run(run(host))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(run(host))
    if host.exit_code:
        # Stopped on a restart order: non-zero so any supervisor starts it again.
        sys.exit(host.exit_code)
