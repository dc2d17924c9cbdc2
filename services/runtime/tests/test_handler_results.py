"""Every runtime handler is declared to return its method's catalogue result model.

The handlers are built the way the service builds them (a host on a real nats-server), so
a new handler or a changed catalogue entry cannot slip past. With `validate_replies` on,
`RpcServer` also checks what each call actually returns (conformance.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from aisopod.conformance import misdeclared_handlers
from aisopod.host import ServiceHost
from aisopod.services import ServiceName
from aisopod.settings import ServiceSettings
from aisopod_runtime import __version__
from aisopod_runtime.main import build_handlers


async def test_runtime_handlers_return_their_result_models(nats_url: str, tmp_path: Path) -> None:
    settings = ServiceSettings(
        service=ServiceName.RUNTIME.value,
        nats_url=nats_url,
        subject_prefix="h" + uuid.uuid4().hex[:8],
        state_dir=tmp_path,
        drain_timeout_s=1,
    )
    host = ServiceHost(settings, ServiceName.RUNTIME, __version__)
    await host.start()
    try:
        handlers = await build_handlers(host)
        assert misdeclared_handlers(ServiceName.RUNTIME, handlers) == []
    finally:
        await host.stop()
