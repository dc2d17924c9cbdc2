"""Shared fixtures of the cross-service suites: the running stack.

One stack serves the whole test session (started once, fast suite). By default it is the
local launcher (`aisopod stack up` on free ports, in a temp state dir); with
`AISOPOD_STACK=compose`, or when a Docker engine answers, the compose stack through
testcontainers. `AISOPOD_STACK_READY_FILE=<file>` reuses a stack that is already running.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aisopod_ops.launcher import spawn
from aisopod_ops.launcher.spawn import stop_local_stack

REPO = Path(__file__).resolve().parents[1]


def start_local_stack(
    state_dir: Path, *extra: str, **kwargs: Any
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The launcher with two replicas of each edge service unless a test asks otherwise:
    the suites exercise the replicated edge (failover, rolling restarts, a replica killed)
    that Compose and Kubernetes run, while the local stack's default is one of each."""
    if "--small" not in extra and "--replicas" not in extra:
        extra = ("--replicas", "2", *extra)
    return spawn.start_local_stack(state_dir, *extra, **kwargs)


FAKE_API_KEY = "sk-fake-upstream-test-key"
HOOK_TOKEN = "hook-token-for-tests-0123456789"


def seed_config(fake_base_url: str) -> dict:
    """The seed configuration of the shared test stack: everything the suites need.

    Tests that change the live config must restore it (other tests share the stack): write
    back the document read before the change, never edited in place (edit a copy), and
    check the hash it yields is the one read before.
    """
    return {
        "auth": {"mode": "token"},
        "models": {
            "providers": [
                {"id": "echo", "kind": "echo", "models": [{"id": "echo"}]},
                {
                    "id": "fake",
                    "kind": "openai",
                    "baseUrl": fake_base_url,
                    "apiKey": FAKE_API_KEY,
                    # fake-tiny: a small context window, so automatic compaction can be
                    # reached in a few turns (test_runtime_compaction.py).
                    "models": [
                        {"id": "fake-small"},
                        {"id": "fake-large"},
                        {"id": "fake-tiny", "contextWindow": 400},
                    ],
                    "timeoutS": 10,
                    "maxRetries": 2,
                },
            ],
        },
        "hooks": {"enabled": True, "token": HOOK_TOKEN},
        # Every suite talks from loopback: exempt it from the traffic limits (not from the
        # failure lockouts, whose rules ignore exemptions). Rate-limit tests simulate other
        # clients with X-Forwarded-For.
        "limits": {"exemptCidrs": ["127.0.0.1/32", "::1/128"]},
    }


@dataclass(frozen=True)
class StackHandle:
    http_url: str
    https_url: str
    ws_url: str
    admin_token: str
    nats_url: str
    state_dir: Path
    pids: dict[str, list[int]]
    launcher_pid: int | None = None
    fake_url: str | None = None  # the fake upstream provider `fake` (…/v1)
    openclaw_url: str = ""  # the gateway's WebSocket for OpenClaw clients

    def nats_password(self, user: str) -> str:
        return (self.state_dir / "secrets" / f"nats-{user}.password").read_text().strip()

    def log_text(self, name: str) -> str:
        path = self.state_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _docker_engine() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        subprocess.run(["docker", "compose", "version"], check=True, capture_output=True)
        return True
    except Exception:
        return False


def stack_mode() -> str:
    mode = os.environ.get("AISOPOD_STACK", "")
    if mode:
        return mode
    return "compose" if _docker_engine() else "local"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator:
    """The shared fake model provider (a real HTTP server; the one allowed fake)."""
    from aisopod_fake_upstream.harness import FakeUpstream

    with FakeUpstream(api_key=FAKE_API_KEY, subprocess=True, startup_timeout=60) as upstream:
        yield upstream


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, fake_upstream) -> Iterator[StackHandle]:
    reuse = os.environ.get("AISOPOD_STACK_READY_FILE")
    if reuse:
        info = json.loads(Path(reuse).read_text())
        yield StackHandle(
            **{k: info[k] for k in StackHandle.__dataclass_fields__ if k in info}
            | {"state_dir": Path(info["state_dir"])}
        )
        return
    if stack_mode() == "compose":
        with compose_stack(fake_upstream) as handle:
            yield handle
        return
    state_dir = tmp_path_factory.mktemp("stack") / "state"
    state_dir.mkdir()
    seed = state_dir.parent / "aisopod.yaml"
    seed.write_text(json.dumps(seed_config(fake_upstream.base_url)))
    # Traefik trusts loopback's X-Forwarded-For here, so suites can play distinct client
    # IPs the way a proxy in front of the gateway would report them.
    proc, info = start_local_stack(
        state_dir,
        "--config",
        str(seed),
        "--scale",
        "runtime=2",
        "--trusted-proxy",
        "127.0.0.1/32",
    )
    try:
        yield StackHandle(
            http_url=info["http_url"],
            https_url=info["https_url"],
            ws_url=info["ws_url"],
            openclaw_url=info["openclaw_url"],
            admin_token=info["admin_token"],
            nats_url=info["nats_url"],
            state_dir=Path(info["state_dir"]),
            pids=info["pids"],
            launcher_pid=proc.pid,
            fake_url=fake_upstream.base_url,
        )
    finally:
        stop_local_stack(proc)


@contextmanager
def compose_stack(fake_upstream) -> Iterator[StackHandle]:
    """The compose stack through testcontainers (needs a Docker engine)."""
    import secrets as pysecrets

    from testcontainers.compose import DockerCompose

    env = {
        name: pysecrets.token_urlsafe(24)
        for name in (
            "AISOPOD_ADMIN_TOKEN",
            "AISOPOD_NATS_ADMIN_PASSWORD",
            "AISOPOD_NATS_AUTH_PASSWORD",
            "AISOPOD_NATS_RATELIMIT_PASSWORD",
            "AISOPOD_NATS_RUNTIME_PASSWORD",
            "AISOPOD_NATS_WS_GATEWAY_PASSWORD",
            "AISOPOD_NATS_HTTP_API_PASSWORD",
            "AISOPOD_NATS_EDGE_SYNC_PASSWORD",
        )
    }
    os.environ.update(env)
    compose = DockerCompose(
        str(REPO), compose_file_name="docker-compose.yml", build=True, wait=True
    )
    with compose:
        host = compose.get_service_host("traefik", 80)
        port = compose.get_service_port("traefik", 80)
        tls_port = compose.get_service_port("traefik", 443)
        yield StackHandle(
            http_url=f"http://{host}:{port}",
            https_url=f"https://{host}:{tls_port}",
            ws_url=f"ws://{host}:{port}/ws",
            openclaw_url=f"ws://{host}:{port}/openclaw",
            admin_token=env["AISOPOD_ADMIN_TOKEN"],
            nats_url="",
            state_dir=REPO / "var" / "compose",
            pids={},
            fake_url=fake_upstream.base_url,
        )
