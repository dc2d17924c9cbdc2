"""The environment the launcher gives its Go children (gosched.py).

GOMAXPROCS: 1 on small hosts (nats-server up to 4 CPUs, Traefik up to 2), the user's own
GOMAXPROCS kept, the launcher options above both. GOGC (GOGC_FOR): 50 for a single
nats-server, Go's default for the rest; the user's own GOGC or GOMEMLIMIT wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from aisopod_ops.launcher.gosched import go_child_env, go_memory_env
from aisopod_ops.launcher.stack import Stack, StackOptions

BASE = {"PATH": "/usr/bin", "HOME": "/home/me"}


def child_envs(options: StackOptions) -> dict[str, dict[str, str]]:
    """Each child's environment as the stack would start it."""
    stack = Stack(options)
    stack._prepare()
    return {spec.name: spec.env for spec in stack._specs()}


# -- GOMAXPROCS ---------------------------------------------------------------------------
def test_small_host_runs_nats_and_traefik_on_one_thread() -> None:
    assert go_child_env(BASE, "nats", None, cpus=2) == {**BASE, "GOMAXPROCS": "1"}
    assert go_child_env(BASE, "traefik", None, cpus=2) == {**BASE, "GOMAXPROCS": "1"}
    assert go_child_env(BASE, "nats", None, cpus=1)["GOMAXPROCS"] == "1"


def test_four_cpus_keep_one_thread_for_nats_only() -> None:
    assert go_child_env(BASE, "nats", None, cpus=4)["GOMAXPROCS"] == "1"
    assert go_child_env(BASE, "traefik", None, cpus=3) == BASE
    assert go_child_env(BASE, "traefik", None, cpus=4) == BASE


def test_larger_host_keeps_gos_default() -> None:
    assert go_child_env(BASE, "nats", None, cpus=5) == BASE
    assert go_child_env(BASE, "traefik", None, cpus=16) == BASE
    assert go_child_env(BASE, "caddy", None, cpus=1) == BASE  # not one of the two


def test_users_own_gomaxprocs_is_left_as_it_is() -> None:
    mine = {**BASE, "GOMAXPROCS": "2"}
    assert go_child_env(mine, "nats", None, cpus=2)["GOMAXPROCS"] == "2"
    assert go_child_env(mine, "traefik", None, cpus=2)["GOMAXPROCS"] == "2"
    assert go_child_env(mine, "nats", None, cpus=64)["GOMAXPROCS"] == "2"


def test_the_option_beats_the_environment_and_the_rule() -> None:
    mine = {**BASE, "GOMAXPROCS": "2"}
    assert go_child_env(mine, "nats", 3, cpus=2)["GOMAXPROCS"] == "3"
    assert go_child_env(BASE, "traefik", 1, cpus=64)["GOMAXPROCS"] == "1"
    # 0 is Go's own default: an inherited GOMAXPROCS is dropped, and the rule does not apply.
    assert "GOMAXPROCS" not in go_child_env(mine, "nats", 0, cpus=2)
    assert "GOMAXPROCS" not in go_child_env(BASE, "nats", 0, cpus=2)
    with pytest.raises(ValueError, match="-1"):
        go_child_env(BASE, "nats", -1, cpus=2)


def test_gomaxprocs_leaves_the_base_environment_as_it_is() -> None:
    base = dict(BASE)
    go_child_env(base, "nats", None, cpus=1)
    assert base == BASE


def test_the_stack_gives_its_children_their_gomaxprocs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("aisopod_ops.launcher.stack.host_cpus", lambda: 2)
    monkeypatch.setenv("GOMAXPROCS", "")  # set but empty counts as not chosen

    state = tmp_path / "state"
    envs = child_envs(StackOptions(http_port=0, https_port=0, state_dir=state))
    assert envs["nats"].get("GOMAXPROCS") == "1"
    assert envs["traefik"].get("GOMAXPROCS") == "1"
    assert not envs["caddy"].get("GOMAXPROCS")  # Caddy is not on a request's hot path
    envs = child_envs(
        StackOptions(
            http_port=0, https_port=0, state_dir=state, nats_gomaxprocs=0, traefik_gomaxprocs=1
        )
    )
    assert "GOMAXPROCS" not in envs["nats"]  # 0: Go's default, the empty one dropped too
    assert envs["traefik"].get("GOMAXPROCS") == "1"
    # The nodes of a local cluster keep Go's default (elections not measured on one
    # thread), unless the option says otherwise.
    envs = child_envs(StackOptions(http_port=0, https_port=0, state_dir=state, nats_cluster=3))
    assert not any(envs[f"nats-{n}"].get("GOMAXPROCS") for n in (1, 2, 3))
    envs = child_envs(
        StackOptions(http_port=0, https_port=0, state_dir=state, nats_cluster=3, nats_gomaxprocs=1)
    )
    assert [envs[f"nats-{n}"].get("GOMAXPROCS") for n in (1, 2, 3)] == ["1", "1", "1"]


# -- GOGC ---------------------------------------------------------------------------------
def test_nats_gets_a_smaller_heap_goal() -> None:
    assert go_memory_env(BASE, "nats") == {**BASE, "GOGC": "50"}


@pytest.mark.parametrize("process", ["traefik", "caddy", "nats-node"])
def test_the_others_keep_gos_default(process: str) -> None:
    assert go_memory_env(BASE, process) == BASE


@pytest.mark.parametrize(
    "mine", [{"GOGC": "100"}, {"GOGC": "off"}, {"GOMEMLIMIT": "64MiB"}, {"GOGC": "200"}]
)
def test_the_users_own_gogc_or_gomemlimit_wins(mine: dict[str, str]) -> None:
    assert go_memory_env({**BASE, **mine}, "nats") == {**BASE, **mine}


def test_an_empty_gogc_counts_as_not_set() -> None:
    assert go_memory_env({**BASE, "GOGC": ""}, "nats")["GOGC"] == "50"


def test_gogc_leaves_the_base_environment_as_it_is() -> None:
    base = dict(BASE)
    go_memory_env(base, "nats")
    assert base == BASE


def test_the_stack_gives_its_children_their_gogc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("GOMEMLIMIT", raising=False)

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
