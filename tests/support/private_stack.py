"""A local stack of a test module's own, which it can stop and start again on the same
state (a whole-stack restart), with the NATS admin's bus for writing state directly."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from aisopod.bus import Bus
from aisopod.settings import ServiceSettings
from tests.conftest import start_local_stack, stop_local_stack


class RestartableStack:
    def __init__(self, state_dir: Path, *launcher_args: str) -> None:
        self.state_dir = state_dir
        self.launcher_args = launcher_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> None:
        self.proc, self.info = start_local_stack(self.state_dir, *self.launcher_args)

    def stop(self) -> None:
        if self.proc is not None:
            stop_local_stack(self.proc)
            self.proc = None
        (self.state_dir / "ready.json").unlink(missing_ok=True)

    async def bus(self) -> Bus:
        """A connection as the NATS admin (what no service is allowed: writes any bucket)."""
        password = (self.state_dir / "secrets" / "nats-admin.password").read_text().strip()
        settings = ServiceSettings(
            nats_url=self.info["nats_url"], nats_user="admin", nats_password=password
        )
        return await Bus.connect(settings)
