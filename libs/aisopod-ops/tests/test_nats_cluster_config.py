"""The NATS cluster configs `aisopod deploy nats-cluster` writes, checked by nats-server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aisopod_ops.launcher import natsconf
from aisopod_ops.launcher.deployfiles import nats_cluster_files
from aisopod_ops.launcher.secrets import NATS_USERS

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_every_node_gets_a_config_nats_server_accepts(tmp_path: Path) -> None:
    files = nats_cluster_files(HOSTS, "route-secret")
    assert sorted(files) == [
        f"node-{n}/{f}" for n in (1, 2, 3) for f in ("compose.yml", "nats.conf")
    ]
    env = dict(os.environ) | {natsconf.password_var(u): f"pw-{u}" for u in NATS_USERS}
    binary = Path(sys.executable).parent / "nats-server"
    for n in (1, 2, 3):
        text = files[f"node-{n}/nats.conf"]
        assert f'server_name: "aisopod-{n}"' in text
        for host in HOSTS:
            assert f"nats-route://route:route-secret@{host}:6222" in text
        path = tmp_path / f"node-{n}.conf"
        path.write_text(text)
        checked = subprocess.run(
            [str(binary), "-t", "-c", str(path)], env=env, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr
        compose = yaml.safe_load(files[f"node-{n}/compose.yml"])
        nats = compose["services"]["nats"]
        assert "6222:6222" in nats["ports"] and "4222:4222" in nats["ports"]
        assert set(nats["environment"]) == {natsconf.password_var(u) for u in NATS_USERS}


def test_a_cluster_takes_three_or_five_distinct_hosts() -> None:
    for hosts in (HOSTS[:2], [*HOSTS, "10.0.0.4"], ["a", "a", "b"]):
        with pytest.raises(ValueError, match="3 or 5 distinct hosts"):
            nats_cluster_files(hosts, "x")
