"""A private local stack for the http-api benchmarks (`aisopod stack up` on free ports).

Seeded with the benchmark's fake upstream as provider `fake`, and with loopback exempt from
the per-IP limits (a benchmark is one client sending thousands of requests a second; the
limiter's own cost stays in the path, its verdict does not end the run).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.spawn import start_local_stack, stop_local_stack


@dataclass
class StackInfo:
    http_url: str
    admin_token: str
    http_api_urls: list[str]
    pids: dict[str, list[int]]
    nats_url: str
    state_dir: Path


class PrivateStack:
    def __init__(self, fake_url: str, fake_key: str, *, replicas: int = 1) -> None:
        self.fake_url = fake_url
        self.fake_key = fake_key
        self.replicas = replicas
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-stack-")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StackInfo:
        root = Path(self.tmp.name)
        seed = root / "seed.json"
        seed.write_text(
            json.dumps(
                {
                    "auth": {"mode": "token"},
                    "limits": {"exemptCidrs": ["127.0.0.1/32", "::1/128"]},
                    "models": {
                        "providers": [
                            # Instant answers: P7 measures the run path, not the
                            # echo provider's streaming pace (docs/runtime.md).
                            {
                                "id": "echo",
                                "kind": "echo",
                                "models": [{"id": "echo"}],
                                "chunkDelayMs": 0,
                            },
                            {
                                "id": "fake",
                                "kind": "openai",
                                "baseUrl": self.fake_url,
                                "apiKey": self.fake_key,
                                "models": [{"id": "fake-small"}],
                            },
                        ]
                    },
                }
            )
        )
        state = root / "state"
        state.mkdir()
        args = ("--config", str(seed), "--replicas", str(self.replicas), "--log-level", "WARNING")
        try:
            self.proc, info = start_local_stack(
                state, *args, timeout=180, log_file=root / "launcher.log"
            )
        except RuntimeError as exc:
            self.__exit__()
            raise RuntimeError(f"the benchmark stack did not come up: {exc}") from None
        routes = yaml.safe_load((state / "traefik" / "dynamic" / "routes.yml").read_text())
        servers = traefik.replica_service(routes, "http-api")["servers"]
        return StackInfo(
            http_url=info["http_url"],
            admin_token=info["admin_token"],
            http_api_urls=[server["url"] for server in servers],
            pids=info["pids"],
            nats_url=info["nats_url"],
            state_dir=state,
        )

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            stop_local_stack(self.proc)
        self.tmp.cleanup()
