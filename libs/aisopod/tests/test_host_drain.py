"""The order of a service's drain (`ServiceHost.drain`): its drain hooks run while its NATS
requests are still answered (the runtime lets runs finish and still answers their
waiters), its drained hooks once no request reaches it any more (the runtime's last wait
for runs an edge sent meanwhile, which `stop` would otherwise end as errors)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from nats.errors import NoRespondersError

from aisopod.bus import Bus
from aisopod.catalogue import methods_for
from aisopod.host import ServiceHost
from aisopod.rpc import CallContext
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings


async def test_drain_hooks_are_served_and_drained_hooks_are_not(
    nats_url: str, tmp_path: Path
) -> None:
    prefix = "d" + uuid.uuid4().hex[:8]
    # The runtime seeds the configuration (CONFIG_WRITERS): a host of its own starts alone.
    host = ServiceHost(
        ServiceSettings(
            service=ServiceName.RUNTIME.value,
            nats_url=nats_url,
            subject_prefix=prefix,
            state_dir=tmp_path,
            drain_timeout_s=2,
        ),
        ServiceName.RUNTIME,
        "9.9.9",
    )
    await host.start()
    asker = await Bus.connect(
        ServiceSettings(service="test", nats_url=nats_url, subject_prefix=prefix, instance="a")
    )
    try:

        async def list_agents(params: Any, ctx: CallContext) -> dict[str, Any]:
            return {"agents": [], "defaultId": "main"}

        served = ["agents.list"]
        others = [spec.name for spec in methods_for(ServiceName.RUNTIME) if spec.name not in served]
        await host.rpc.start({"agents.list": list_agents}, skip=others)

        async def answered() -> bool:
            """Whether any reply comes (an error reply counts: someone took the request)."""
            try:
                await asker.requester.request(f"{prefix}.rpc.agents.list", b"{}", timeout=5)
            except NoRespondersError:
                return False
            return True

        seen: dict[str, bool] = {}

        async def during_drain() -> None:
            seen["drain"] = await answered()

        async def once_drained() -> None:
            seen["drained"] = await answered()

        host.on_drain(during_drain)
        host.on_drained(once_drained)
        assert await answered()
        await host.drain()
        assert seen == {"drain": True, "drained": False}
    finally:
        await asker.close()
        await host.stop()
