"""The real OpenClaw node host (`openclaw node run`, openclaw 2026.9.6) against the real stack
through `/openclaw` (docs/openclaw.md, Nodes): it asks for device pairing, is approved with
`openclaw devices approve`, connects once restarted (as OpenClaw's own docs say), answers
`node.invoke` from our operators on every ws-gateway replica and from the OpenClaw CLI, and
is no longer connected once it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.openclaw import NODE_BIN, OPENCLAW, installed, json_out, openclaw
from tests.support.ws_client import RpcError, WsClient
from tests.support.ws_stack import require_ws_stack

pytestmark = pytest.mark.integration

if not installed():
    pytest.skip(
        "the OpenClaw CLI is not installed: scripts/bootstrap.sh --openclaw",
        allow_module_level=True,
    )

# Node start-up is seconds on a quiet machine, much more on a loaded shared one.
NODE_DEADLINE_S = 180.0
COMMANDS = "system.which"
PUBLICATIONS = ("node.runnerInventory.update", "node.skills.update", "node.pluginTools.update")


class NodeHost:
    """One `openclaw node run` process with its own HOME (its device key lives there)."""

    def __init__(self, stack: Any, home: Path, name: str) -> None:
        self.stack, self.home, self.name = stack, home, name
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        url = urlsplit(self.stack.openclaw_url)
        env = {
            "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "OPENCLAW_GATEWAY_TOKEN": self.stack.admin_token,
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "NO_COLOR": "1",
        }
        args = [str(OPENCLAW), "node", "run", "--host", str(url.hostname), "--port"]
        args += [str(url.port), "--context-path", url.path, "--display-name", self.name]
        args += ["--commands", COMMANDS]
        self.runs += 1
        log = (self.home / f"node-{self.runs}.log").open("wb")
        # Its own process group: stopping it stops what it spawned.
        self.proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def log(self, tail: int | None = 3000) -> str:
        text = (self.home / f"node-{self.runs}.log").read_text(errors="replace")
        return text if tail is None else text[-tail:]


async def poll(what: str, probe: Callable[[], Awaitable[Any]], host: NodeHost) -> Any:
    deadline = time.monotonic() + NODE_DEADLINE_S
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {NODE_DEADLINE_S:.0f} s; node log:\n{host.log()}")
        await asyncio.sleep(0.5)


async def test_node_host_pairs_and_answers_invokes_from_both_protocols(
    stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = await require_ws_stack(stack)
    name = f"itest-host-{uuid.uuid4().hex[:6]}"
    host = NodeHost(stack, tmp_path_factory.mktemp("node-host"), name)
    cli_home = tmp_path_factory.mktemp("openclaw-cli")
    node_id: str | None = None

    async def admin(method: str, params: dict[str, Any] | None = None) -> Any:
        # A socket per call: the polls span minutes on a loaded machine.
        async with await WsClient.connect(
            stack.ws_url, token=stack.admin_token, subscribe=[]
        ) as client:
            return await client.call(method, params, timeout=60)

    try:
        host.start()

        async def pairing_request() -> dict[str, Any] | None:
            pending = (await admin("device.pair.list"))["pending"]
            mine = [p for p in pending if p["client"].get("displayName") == name]
            return mine[0] if mine else None

        request = await poll("a device pairing request", pairing_request, host)
        assert request["role"] == "node" and request["client"]["id"] == "node-host"
        node_id = request["deviceId"]
        approved = json_out(
            openclaw(stack, cli_home, "devices", "approve", request["requestId"], "--json")
        )
        assert approved["deviceId"] == node_id and approved["decision"] == "approved"
        # A node host paused on pairing does not resume by itself: it is run again.
        host.stop()
        host.start()

        async def connected() -> dict[str, Any] | None:
            nodes = (await admin("node.list"))["nodes"]
            live = [n for n in nodes if n["nodeId"] == node_id and n["connected"]]
            return live[0] if live else None

        node = await poll("the node connected", connected, host)
        assert node["displayName"] == name and node["paired"] is True
        assert node["commands"] == ["system.which"] and "system" in node["caps"]

        # Our operators, on each ws-gateway replica: the invoke crosses NATS to the one
        # holding the node host's socket.
        for replica in env.replicas:
            async with await WsClient.connect(
                replica, token=env.token, headers=env.edge
            ) as operator:
                result = await operator.call(
                    "node.invoke",
                    {
                        "nodeId": node_id,
                        "command": "system.which",
                        "params": {"bins": ["sh"]},
                        "idempotencyKey": uuid.uuid4().hex,
                    },
                    timeout=60,
                )
                assert result["ok"] is True
                assert result["payload"]["bins"]["sh"].endswith("/sh")
                with pytest.raises(RpcError) as refused:
                    await operator.call(
                        "node.invoke", {"nodeId": node_id, "command": "camera.snap"}
                    )
                assert refused.value.detail == "COMMAND_NOT_DECLARED"

        # OpenClaw operators: the CLI finds the node by its name, and the node's own error
        # comes back as the node's.
        args = ("nodes", "invoke", "--node", name, "--command", "system.which")
        answer = json_out(openclaw(stack, cli_home, *args, "--params", '{"bins":["sh"]}', "--json"))
        assert answer["ok"] is True and answer["nodeId"] == node_id
        assert answer["command"] == "system.which"
        assert answer["payload"]["bins"]["sh"].endswith("/sh")
        params = f'{{"nodeId":"{node_id}","command":"system.which","params":{{"bins":"sh"}}}}'
        failed = openclaw(stack, cli_home, "gateway", "call", "node.invoke", "--params", params)
        assert failed.returncode != 0
        assert "bins required" in failed.stdout + failed.stderr
        status = json_out(openclaw(stack, cli_home, "nodes", "status", "--json"))
        (listed,) = [n for n in status["nodes"] if n["nodeId"] == node_id]
        assert listed["connected"] is True and listed["paired"] is True
        described = json_out(
            openclaw(stack, cli_home, "nodes", "describe", "--node", node_id, "--json")
        )
        assert described["nodeId"] == node_id and described["commands"] == ["system.which"]
        # Its worker, skills and plugin-tool publications got `unknown method` (we have
        # none of those features): the host took that as "not supported" and said nothing.
        said = host.log(tail=None)
        assert not [m for m in PUBLICATIONS if m in said], said

        host.stop()

        async def gone() -> bool:
            nodes = (await admin("node.list"))["nodes"]
            return not any(n["nodeId"] == node_id and n["connected"] for n in nodes)

        await poll("the node gone from the connected nodes", gone, host)
        with pytest.raises(RpcError) as absent:
            await admin("node.invoke", {"nodeId": node_id, "command": "system.which"})
        assert absent.value.detail == "NOT_CONNECTED"
    finally:
        host.stop()
        if node_id is not None:  # leave no approved device behind for other tests
            with contextlib.suppress(RpcError):
                await admin("device.pair.remove", {"deviceId": node_id})
