"""A private local stack for the http-api benchmarks (`aisopod stack up` on free ports).

Seeded with the benchmark's fake upstream as provider `fake`, and with loopback exempt from
the per-IP limits (a benchmark is one client sending thousands of requests a second; the
limiter's own cost stays in the path, its verdict does not end the run).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


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
                            {"id": "echo", "kind": "echo", "models": [{"id": "echo"}]},
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
        ready = root / "ready.json"
        self._log = open(root / "launcher.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aisopod.cli",
                "stack",
                "up",
                "--http-port",
                "0",
                "--https-port",
                "0",
                "--state-dir",
                str(state),
                "--ready-file",
                str(ready),
                "--config",
                str(seed),
                "--replicas",
                str(self.replicas),
                "--log-level",
                "WARNING",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + 180
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                text = (root / "launcher.log").read_text(errors="replace")
                raise RuntimeError(f"the benchmark stack did not come up:\n{text[-2000:]}")
            time.sleep(0.2)
        info = json.loads(ready.read_text())
        routes = yaml.safe_load((state / "traefik" / "dynamic" / "routes.yml").read_text())
        servers = routes["http"]["services"]["http-api"]["loadBalancer"]["servers"]
        return StackInfo(
            http_url=info["http_url"],
            admin_token=info["admin_token"],
            http_api_urls=[server["url"] for server in servers],
            pids=info["pids"],
            nats_url=info["nats_url"],
            state_dir=state,
        )

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        self.tmp.cleanup()
