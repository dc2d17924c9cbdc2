"""A node's own exec policy through `/openclaw` with the real OpenClaw CLI: `openclaw
approvals get|allowlist add --node` read and write our `exec.approvals.node.*` in OpenClaw's
approvals-file shape (docs/openclaw.md, Exec policy), with its hash guard and its errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.openclaw import installed, json_out, openclaw

pytestmark = pytest.mark.integration

if not installed():
    pytest.skip(
        "the OpenClaw CLI is not installed: scripts/bootstrap.sh --openclaw",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openclaw-home")


def _call(stack: Any, home: Path, method: str, params: dict[str, Any]) -> Any:
    args = ("gateway", "call", method, "--params", json.dumps(params), "--json")
    return openclaw(stack, home, *args)


def test_node_policy_round_trip_in_openclaws_shape(stack, home: Path) -> None:
    node_id = "oc-policy-" + uuid.uuid4().hex[:8]
    fresh = _call(stack, home, "exec.approvals.node.get", {"nodeId": node_id})
    assert fresh.returncode == 0, fresh.stderr
    snapshot = json_out(fresh)
    assert snapshot["exists"] is False and len(snapshot["hash"]) == 64
    assert snapshot["file"]["version"] == 1
    assert snapshot["file"]["defaults"]["security"] in ("allowlist", "full")

    file = {
        "version": 1,
        "defaults": {"security": "allowlist", "ask": "on-miss"},
        "agents": {"*": {"allowlist": [{"pattern": "/usr/bin/uptime"}]}},
    }
    params = {"nodeId": node_id, "file": file, "baseHash": snapshot["hash"]}
    written = _call(stack, home, "exec.approvals.node.set", params)
    assert written.returncode == 0, written.stderr
    after = json_out(written)
    assert after["exists"] is True and after["hash"] != snapshot["hash"]
    assert after["file"]["agents"]["*"]["allowlist"] == [{"pattern": "/usr/bin/uptime"}]
    assert after["file"]["defaults"] == {"security": "allowlist", "ask": "on-miss"}

    # The same write again, on the hash it no longer has: refused, nothing changes.
    stale = _call(stack, home, "exec.approvals.node.set", params)
    assert stale.returncode != 0
    assert json_out(stale)["error"]["details"]["code"] == "POLICY_CHANGED"
    again = json_out(_call(stack, home, "exec.approvals.node.get", {"nodeId": node_id}))
    assert again == after

    # `security: deny` cannot be refused without asking here: every command asks instead.
    deny = {"version": 1, "defaults": {"security": "deny"}}
    denied = _call(
        stack,
        home,
        "exec.approvals.node.set",
        {"nodeId": node_id, "file": deny, "baseHash": after["hash"]},
    )
    assert denied.returncode == 0, denied.stderr
    assert json_out(denied)["file"]["defaults"] == {"security": "allowlist", "ask": "always"}


def test_per_agent_entries_are_refused(stack, home: Path) -> None:
    node_id = "oc-policy-" + uuid.uuid4().hex[:8]
    file = {"version": 1, "agents": {"main": {"allowlist": [{"pattern": "ls"}]}}}
    done = _call(stack, home, "exec.approvals.node.set", {"nodeId": node_id, "file": file})
    assert done.returncode != 0
    error = json_out(done)["error"]
    assert error["code"] == "INVALID_REQUEST"
    assert error["details"]["code"] == "UNSUPPORTED_POLICY"
    fresh = json_out(_call(stack, home, "exec.approvals.node.get", {"nodeId": node_id}))
    assert fresh["exists"] is False
