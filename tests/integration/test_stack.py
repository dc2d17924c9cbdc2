"""The foundation: the stack comes up, routes, registers, and NATS enforces permissions."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import nats
import pytest
from nats.errors import NoServersError

from aisopod.services import PYTHON_SERVICES

pytestmark = pytest.mark.integration


def test_health_through_traefik(stack) -> None:
    response = httpx.get(f"{stack.http_url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def _service_ports(stack) -> dict[str, int]:
    """Instance name → HTTP port of every service instance this stack started."""
    record_file = Path(stack.state_dir) / "stack.json"
    if record_file.exists():
        # The launcher's record of where each instance listens (one process may run two:
        # auth and ratelimit share one).
        urls = json.loads(record_file.read_text())["service_urls"]
        return {
            f"{service}-{index + 1}": int(url.rsplit(":", 1)[1])
            for service, group in urls.items()
            for index, url in enumerate(group)
        }
    state = f"AISOPOD_STATE_DIR={stack.state_dir}".encode()
    found: dict[str, int] = {}
    pids = [pid for pids in stack.pids.values() for pid in pids]
    for pid in pids:
        try:
            environ = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # restarted under a new pid by another test; the rest still tell
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        if state in environ and "AISOPOD_PORT" in env:
            found[env["AISOPOD_INSTANCE"]] = int(env["AISOPOD_PORT"])
    return found


def test_probe_aliases_through_traefik_and_on_every_service(stack) -> None:
    for alias, path in (("/healthz", "/health"), ("/readyz", "/ready")):
        plain, aliased = (httpx.get(f"{stack.http_url}{p}", timeout=5) for p in (path, alias))
        assert (aliased.status_code, aliased.json().keys()) == (200, plain.json().keys())
        assert aliased.headers["cache-control"] == "no-store"
        assert aliased.headers["x-content-type-options"] == "nosniff"
    ports = _service_ports(stack)
    assert {name.rsplit("-", 1)[0] for name in ports} >= {s.value for s in PYTHON_SERVICES}
    for instance, port in ports.items():
        live = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert live.status_code == 200 and live.json()["ok"] is True, instance
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["ready"] is True, instance


def test_ui_served_with_spa_fallback_and_missing_asset_404(stack) -> None:
    index = httpx.get(f"{stack.http_url}/", timeout=5)
    assert index.status_code == 200
    assert "text/html" in index.headers["content-type"]
    deep_link = httpx.get(f"{stack.http_url}/some/client/route", timeout=5)
    assert deep_link.status_code == 200
    assert deep_link.text == index.text
    missing = httpx.get(f"{stack.http_url}/assets/nope-123.js", timeout=5)
    assert missing.status_code == 404
    assert index.headers["x-frame-options"] == "DENY"


async def _admin(stack):
    return await nats.connect(
        stack.nats_url, user="admin", password=stack.nats_password("admin"), connect_timeout=2
    )


async def test_every_service_registers_with_nats_micro(stack) -> None:
    nc = await _admin(stack)
    try:
        expected = {s.value for s in PYTHON_SERVICES}
        seen: dict[str, set[str]] = {}
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$SRV.INFO", b"", reply=inbox)
        deadline = asyncio.get_running_loop().time() + 30
        instances = sum(len(stack.pids.get(name, ())) for name in expected)
        while sum(len(v) for v in seen.values()) < instances:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                msg = await sub.next_msg(timeout=remaining)
            except nats.errors.TimeoutError:
                break
            info = json.loads(msg.data)
            seen.setdefault(info["name"], set()).add(info["metadata"]["instance"])
            assert info["version"]
        assert set(seen) >= expected
        for name in expected:
            assert len(seen[name]) == len(stack.pids[name]), name
        assert len(seen["ws-gateway"]) == 2
    finally:
        await nc.close()


async def test_nats_refuses_clients_without_credentials(stack) -> None:
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        await nats.connect(
            stack.nats_url, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False
        )


async def test_service_user_is_refused_subjects_outside_its_permissions(stack) -> None:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        stack.nats_url,
        user="ratelimit",
        password=stack.nats_password("ratelimit"),
        error_cb=on_error,
        connect_timeout=2,
        name="permission-probe",  # a violation on purpose (see test_security_nats.py)
    )
    try:
        await nc.publish("aisopod.rpc.config.set", b"{}")
        await nc.flush(timeout=2)
        deadline = asyncio.get_running_loop().time() + 30
        while not errors and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert any("permissions violation" in str(e).lower() for e in errors), errors
    finally:
        await nc.close()


def test_go_children_run_with_the_launchers_gomaxprocs(stack) -> None:
    """nats-server and Traefik as started: the GOMAXPROCS of launcher/gosched.py's rule for
    this host and its GOGC (or the ones this environment sets), read from their own
    environment."""
    from aisopod_ops.launcher.gosched import go_child_env, go_memory_env, host_cpus

    record_file = Path(stack.state_dir) / "stack.json"
    if not stack.pids or not record_file.exists():
        pytest.skip("not a stack of the launcher (Compose sets its own environment)")
    children = json.loads(record_file.read_text())["children"]
    for name in ("nats", "traefik"):
        expected = go_child_env(dict(os.environ), name, None, host_cpus()).get("GOMAXPROCS")
        environ = (Path("/proc") / str(children[name]) / "environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env.get("GOMAXPROCS") == expected, name
        assert env.get("GOGC") == go_memory_env(dict(os.environ), name).get("GOGC"), name
