"""Which Python services the local launcher runs in one process: auth and ratelimit in the
default profile (each once), apart when either is scaled, none apart under `--small`."""

from __future__ import annotations

from pathlib import Path

from aisopod.services import ServiceName
from aisopod_ops.launcher.combined import Plan
from aisopod_ops.launcher.stack import COHOSTED_NAME, Stack, StackOptions


def _names(tmp_path: Path, **options: object) -> tuple[Stack, list[str]]:
    options_ = StackOptions(state_dir=tmp_path / "state", http_port=0, https_port=0, **options)  # type: ignore[arg-type]
    stack = Stack(options_)
    stack._prepare()
    return stack, [spec.name for spec in stack._specs()]


def test_default_profile_runs_auth_and_ratelimit_in_one_child(tmp_path: Path) -> None:
    stack, names = _names(tmp_path)
    assert COHOSTED_NAME in names and "auth" not in names and "ratelimit" not in names
    assert {"runtime", "ws-gateway", "http-api", "caddy", "traefik", "nats"} <= set(names)
    spec = next(s for s in stack._specs() if s.name == COHOSTED_NAME)
    assert spec.argv[1:3] == ["-m", "aisopod_ops.launcher.combined"]
    assert spec.group == "core"
    for secret in ("AISOPOD_NATS_PASSWORD", "AISOPOD_NATS_USER", "AISOPOD_EDGE_SECRET_FILE"):
        assert secret not in spec.env
    # The plan the child reads: each service its own port, instance and NATS user's password.
    plan = Plan.model_validate_json(Path(spec.argv[3]).read_text())
    assert stack.secrets is not None
    assert [p.service for p in plan.services] == [ServiceName.AUTH, ServiceName.RATELIMIT]
    for planned in plan.services:
        assert planned.port == stack.service_ports[planned.service][0]
        assert planned.instance == f"{planned.service.value}-1"
        expected = stack.secrets.nats_password_files[planned.service.value]
        assert planned.nats_password_file == expected
        assert planned.edge_secret_file is None
    # Paths to the secrets, never a secret itself.
    text = Path(spec.argv[3]).read_text()
    assert not any(p in text for p in stack.secrets.nats_passwords.values())
    assert Path(spec.argv[3]).stat().st_mode & 0o077 == 0


def test_a_scaled_service_runs_apart(tmp_path: Path) -> None:
    _, names = _names(tmp_path, scale={"ratelimit": 2})
    assert COHOSTED_NAME not in names
    assert names.count("auth") == 1 and {"ratelimit-1", "ratelimit-2"} <= set(names)


def test_small_hosts_every_service_in_the_launcher(tmp_path: Path) -> None:
    _, names = _names(tmp_path, small=True)
    assert COHOSTED_NAME not in names and "services" in names
