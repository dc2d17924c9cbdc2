"""GOGC of the launcher's Go children (gosched.py, GOGC_FOR): 50 for a single nats-server,
Go's default for the rest; the user's own GOGC or GOMEMLIMIT wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisopod_ops.launcher.gosched import go_memory_env
from aisopod_ops.launcher.stack import Stack, StackOptions

BASE = {"PATH": "/usr/bin", "HOME": "/home/me"}


def test_nats_gets_a_smaller_heap_goal() -> None:
    assert go_memory_env(BASE, "nats") == {**BASE, "GOGC": "50"}


@pytest.mark.parametrize("process", ["traefik", "caddy", "nats-node"])
def test_the_others_keep_gos_default(process: str) -> None:
    assert go_memory_env(BASE, process) == BASE


@pytest.mark.parametrize(
    "mine", [{"GOGC": "100"}, {"GOGC": "off"}, {"GOMEMLIMIT": "64MiB"}, {"GOGC": "200"}]
)
def test_the_users_own_setting_wins(mine: dict[str, str]) -> None:
    assert go_memory_env({**BASE, **mine}, "nats") == {**BASE, **mine}


def test_an_empty_variable_counts_as_not_set() -> None:
    assert go_memory_env({**BASE, "GOGC": ""}, "nats")["GOGC"] == "50"


def test_base_environment_is_not_changed() -> None:
    base = dict(BASE)
    go_memory_env(base, "nats")
    assert base == BASE


def test_the_stack_gives_its_children_that_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)

    def child_envs(options: StackOptions) -> dict[str, dict[str, str]]:
        stack = Stack(options)
        stack._prepare()
        return {spec.name: spec.env for spec in stack._specs()}

    state = tmp_path / "state"
    envs = child_envs(StackOptions(http_port=0, https_port=0, state_dir=state))
    assert envs["nats"].get("GOGC") == "50"
    assert "GOGC" not in envs["traefik"]
    assert "GOGC" not in envs["caddy"]
    # The nodes of a local cluster are not what was measured: Go's default.
    envs = child_envs(StackOptions(http_port=0, https_port=0, state_dir=state, nats_cluster=3))
    assert not any(envs[f"nats-{n}"].get("GOGC") for n in (1, 2, 3))
    monkeypatch.setenv("GOGC", "100")
    envs = child_envs(StackOptions(http_port=0, https_port=0, state_dir=state))
    assert envs["nats"]["GOGC"] == "100"
    assert envs["traefik"]["GOGC"] == "100"  # passed on to every child, as it was
