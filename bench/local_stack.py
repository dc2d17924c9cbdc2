"""The local stack `python -m bench` measures: the launcher (`aisopod stack up` on free
loopback ports, in a temp state dir) with a benchmark seed, plus the fake upstream model
provider in its own process (the P6 reference and the `fake` provider of the stack).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aisopod_ops.launcher import traefik
from bench.harness import progress

FAKE_API_KEY = "sk-bench-fake-upstream"


def bench_seed(fake_url: str | None) -> dict[str, Any]:
    """The benchmark configuration: the load generators are single abusive clients by
    design, so the per-connection request limit is lifted and loopback is exempt from the
    per-IP traffic limits (P9 measures the limiter on a stack of its own)."""
    # Instant echo answers: P7 measures the run path, not the echo's streaming pace.
    echo = {"id": "echo", "kind": "echo", "models": [{"id": "echo"}], "chunkDelayMs": 0}
    providers: list[dict[str, Any]] = [echo]
    if fake_url:
        providers.append(
            {
                "id": "fake",
                "kind": "openai",
                "baseUrl": fake_url,
                "apiKey": FAKE_API_KEY,
                "models": [{"id": "fake-small"}],
            }
        )
    return {
        "auth": {"mode": "token"},
        "gateway": {"requestsPerSecond": 1_000_000, "requestBurst": 1_000_000, "maxInFlight": 4096},
        "limits": {"exemptCidrs": ["127.0.0.1/32", "::1/128"]},
        "models": {"providers": providers},
    }


@dataclass
class BenchStack:
    tmp: Path
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    fake: Any = None  # aisopod_fake_upstream.FakeUpstream, stopped with the stack
    shared_fake: Any = None  # one the caller started (and stops)

    @classmethod
    def start(
        cls,
        *launcher_args: str,
        with_fake: bool = True,
        shared_fake: Any = None,
        env: dict[str, str] | None = None,
    ) -> BenchStack:
        """`shared_fake`: a running FakeUpstream (api key FAKE_API_KEY) to use as the `fake`
        provider instead of starting one, e.g. the one another product is measured with.
        `env`: variables over this process's environment for the launcher (and so its
        children)."""
        from aisopod_fake_upstream.harness import FakeUpstream
        from aisopod_ops.launcher.spawn import start_local_stack

        tmp = Path(tempfile.mkdtemp(prefix="aisopod-bench-"))
        fake = None
        if with_fake and shared_fake is None:
            fake = FakeUpstream(api_key=FAKE_API_KEY, subprocess=True, startup_timeout=60)
            fake.__enter__()
        seed = tmp / "seed.yaml"
        upstream = shared_fake or fake
        seed.write_text(json.dumps(bench_seed(upstream.base_url if upstream else None)))
        state = tmp / "state"
        state.mkdir()
        progress(f"starting the local stack in {state}")
        try:
            proc, info = start_local_stack(
                state, "--config", str(seed), "--log-level", "WARNING", *launcher_args, env=env
            )
        except BaseException:
            if fake is not None:
                fake.__exit__(None, None, None)
            raise
        return cls(tmp, proc, info, fake, shared_fake)

    def stop(self) -> None:
        from aisopod_ops.launcher.spawn import stop_local_stack

        stop_local_stack(self.proc)
        if self.fake is not None:
            self.fake.__exit__(None, None, None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what the area benchmarks need ----------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return Path(self.info["state_dir"])

    @property
    def token(self) -> str:
        return str(self.info["admin_token"])

    @property
    def http_port(self) -> int:
        return int(self.info["http_url"].rsplit(":", 1)[1])

    @property
    def pids(self) -> dict[str, list[int]]:
        return dict(self.info["pids"])

    def nats_password(self, user: str = "admin") -> str:
        return (self.state_dir / "secrets" / f"nats-{user}.password").read_text().strip()

    def backend_urls(self, service: str) -> list[str]:
        """The URLs Traefik balances for `service` (each replica directly)."""
        routes = yaml.safe_load((self.state_dir / "traefik" / "dynamic" / "routes.yml").read_text())
        servers = traefik.replica_service(routes, service)["servers"]
        return [s["url"] for s in servers]

    def ready_file(self) -> Path:
        """A ready file in the format `--stack` options of the area scripts read."""
        path = self.tmp / "bench-ready.json"
        path.write_text(json.dumps(self.info))
        return path
