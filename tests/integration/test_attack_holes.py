"""The smaller holes of the zero-trust pass, attacked through the real local stack.

Each test plays the attack and fails if it works: listeners on every interface, NATS's
open monitoring endpoint, a DNS-rebinding page in `none` mode, provider header secrets
shown to a read scope, tool errors answered as 500s with a traceback, refusals without the
security headers, a canvas file under the reserved `__aisopod/` prefix.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from aisopod.config.model import REDACTED
from tests.integration.auth_support import Admin
from tests.support.control_writes import control_write
from tests.support.listening import connectable, listening, non_loopback_addresses, tree
from tests.support.ws_client import RpcError, WsClient

pytestmark = pytest.mark.integration

SECRET_HEADER = "X-Upstream-Key"


def _children(stack) -> dict[str, int]:
    record = json.loads((Path(stack.state_dir) / "stack.json").read_text())
    return {name: pid for name, pid in record["children"].items() if pid is not None}


def _ports_of(stack, name: str) -> set[int]:
    return {port for _, port in listening(_children(stack)[name])}


# -- bind only where needed ---------------------------------------------------------------


def test_every_process_of_the_stack_listens_on_loopback_only(stack) -> None:
    if not (Path(stack.state_dir) / "stack.json").exists():
        pytest.skip("not a local stack")
    sockets: dict[str, set[tuple[str, int]]] = {}
    for name, pid in _children(stack).items():
        for member in tree(pid):
            sockets.setdefault(name, set()).update(listening(member))
    assert {"nats", "caddy", "traefik", "auth+ratelimit", "runtime-1"} <= set(sockets)
    for name, found in sockets.items():
        assert found, f"{name} listens nowhere?"
        wild = {(address, port) for address, port in found if address != "127.0.0.1"}
        assert not wild, f"{name} listens beyond the bind address: {wild}"
    ports = {port for found in sockets.values() for _, port in found}
    for address in non_loopback_addresses():
        reachable = sorted(port for port in ports if connectable(address, port, timeout=0.5))
        assert not reachable, f"ports open on {address}: {reachable}"


def test_nats_monitoring_is_off(stack) -> None:
    """The monitoring endpoint has no login and lists users and connections: the local
    stack runs without it, so nats-server listens on its client port alone."""
    if not (Path(stack.state_dir) / "stack.json").exists():
        pytest.skip("not a local stack")
    conf = (Path(stack.state_dir) / "nats" / "nats.conf").read_text()
    assert not any(line.startswith("http") for line in conf.splitlines())
    client_port = int(stack.nats_url.rsplit(":", 1)[1])
    assert _ports_of(stack, "nats") == {client_port}
    # The client port speaks NATS, not the monitoring API.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{client_port}/connz?auth=true", timeout=2)


# -- DNS rebinding in `none` mode ---------------------------------------------------------


async def test_a_rebound_name_gets_no_session_in_none_mode(stack, admin: Admin) -> None:
    def to_none(document: dict[str, Any]) -> None:
        document["auth"]["mode"] = "none"

    address, port = stack.ws_url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
    async with admin.live_config(to_none):
        # The page of evil.example, its name re-pointed at the gateway: Host = Origin.
        with pytest.raises(RpcError) as info:
            await WsClient.connect(
                f"ws://evil.example:{port}/ws",
                origin=f"http://evil.example:{port}",
                host=address,
                port=int(port),
            )
        assert info.value.detail == "ORIGIN_NOT_ALLOWED"
        # The gateway's own page (the address it was started on) still connects.
        own = await WsClient.connect(stack.ws_url, origin=f"http://{address}:{port}")
        async with own as ws:
            assert ws.hello["protocol"] == 1
        via_localhost = await WsClient.connect(
            f"ws://localhost:{port}/ws", origin=f"http://localhost:{port}", host=address
        )
        async with via_localhost as ws:
            assert ws.hello["protocol"] == 1
        # The same page over HTTP: same-origin for the browser, so no CORS stands in its
        # way; http-api refuses the host name it was never given.
        body = {"tool": "current_time", "args": {}}
        async with httpx.AsyncClient(base_url=stack.http_url, timeout=20) as client:
            rebound = await client.post(
                "/tools/invoke", json=body, headers={"Host": f"evil.example:{port}"}
            )
            assert rebound.status_code == 403, rebound.text
            assert rebound.json()["error"]["type"] == "host_not_allowed"
            own_page = await client.post("/tools/invoke", json=body)
            assert own_page.status_code == 200, own_page.text


# -- secrets a read scope must not see -----------------------------------------------------


async def test_provider_header_values_are_redacted_for_readers_and_kept(
    stack, admin: Admin
) -> None:
    secret = f"hdr-{uuid.uuid4().hex}"

    def add_header(document: dict[str, Any]) -> None:
        fake = next(p for p in document["models"]["providers"] if p["id"] == "fake")
        fake["headers"] = {SECRET_HEADER: secret}

    async with admin.live_config(add_header):
        reader = await WsClient.connect(
            stack.ws_url, token=stack.admin_token, scopes=["operator.read"]
        )
        async with reader as ws:
            got = await ws.call("config.get")
        assert secret not in json.dumps(got)
        fake = next(p for p in got["config"]["models"]["providers"] if p["id"] == "fake")
        assert fake["headers"] == {SECRET_HEADER: REDACTED}
        # The redacted document written back keeps the stored value.
        document = got["config"]
        document["ui"]["title"] = f"kept-{uuid.uuid4().hex[:6]}"
        params = {"config": document, "baseHash": got["hash"]}
        async with await WsClient.connect(stack.ws_url, token=stack.admin_token) as ws:
            # The admin token is every earlier test's principal too: its write budget
            # may be spent, so wait out the retry hint as any client must.
            await control_write(lambda: ws.call("config.set", params))
        stored = (await (await admin.store()).load()).config
        (kept,) = [p for p in stored.models.providers if p.id == "fake"]
        assert kept.headers[SECRET_HEADER].get_secret_value() == secret


# -- tool errors -----------------------------------------------------------------------------


def _invoke(stack, tool: str, args: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.http_url}/tools/invoke",
        json={"tool": tool, "args": args},
        headers={"authorization": f"Bearer {stack.admin_token}"},
        timeout=20,
    )


def _tracebacks(stack) -> int:
    names = [n for n in _children(stack) if n.startswith("http-api")]
    return sum(stack.log_text(name).count("Traceback") for name in names)


def test_a_tool_error_is_a_422_with_the_tools_message_and_no_traceback(stack) -> None:
    before = _tracebacks(stack)
    for tool, args, words in (
        ("canvas_write", {"path": "../../etc/passwd", "content": "x"}, "bad canvas path"),
        ("current_time", {"timezone": "Mars/Olympus_Mons"}, "unknown timezone"),
        ("canvas_write", {"path": "__aisopod/live.js", "content": "alert(1)"}, "reserved"),
    ):
        response = _invoke(stack, tool, args)
        assert response.status_code == 422, (tool, response.text)
        body = response.json()
        assert body["ok"] is False and body["error"]["type"] == "tool_error"
        assert words in body["error"]["message"], body
        assert body["result"]["code"] == "TOOL_ERROR"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert _tracebacks(stack) == before
    # The reserved script is still the gateway's own.
    script = httpx.get(
        f"{stack.http_url}/canvas/__aisopod/live.js",
        headers={"authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
    )
    assert script.status_code == 200 and "alert(1)" not in script.text


# -- security headers on every service's own answers --------------------------------------


def test_refusals_straight_from_each_service_carry_the_security_headers(stack) -> None:
    """Not through Traefik: each process's own answers (refusals, unknown paths)."""
    if not (Path(stack.state_dir) / "stack.json").exists():
        pytest.skip("not a local stack")
    children = _children(stack)
    names = [n for n in children if n not in ("nats", "traefik")]
    assert any(n.startswith("http-api") for n in names)
    for name in names:
        for port in _ports_of(stack, name):
            base = f"http://127.0.0.1:{port}"
            answers = [httpx.get(f"{base}/no-such-path-{uuid.uuid4().hex[:6]}", timeout=5)]
            if name.startswith("http-api"):
                answers.append(httpx.get(f"{base}/status", timeout=5))  # no identity: refused
            if name.startswith("ws-gateway"):
                upgrade = {"Connection": "Upgrade", "Upgrade": "websocket"}
                answers.append(httpx.get(f"{base}/ws", headers=upgrade, timeout=5))
            for answer in answers:
                assert answer.headers.get("x-content-type-options") == "nosniff", (name, answer)
                assert answer.headers.get("referrer-policy"), (name, answer)
