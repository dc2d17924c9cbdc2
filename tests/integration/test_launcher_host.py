"""`aisopod stack up --host`: listeners bind the given address; every URL the launcher
writes is one a local client can connect to (the loopback of the family for a wildcard,
IPv6 bracketed), and the stack answers through them (docs/deployment.md)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import start_local_stack, stop_local_stack
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


def _ipv6_loopback_missing() -> str | None:
    """Why ::1 cannot be used here, or None when it can."""
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return f"no IPv6 loopback (::1) on this machine: {exc}"
    return None


async def _ws_health(ws_url: str, token: str) -> dict:
    async with await WsClient.connect(ws_url, token=token) as client:
        return await client.call("health", {})


@pytest.mark.parametrize(
    ("bind", "connect", "profile"),
    [
        # The default profile (a process per service) on the IPv6 loopback...
        ("::1", "[::1]", ("--replicas", "1")),
        # ...and the lean one on the IPv4 wildcard: both paths write the same addresses.
        ("0.0.0.0", "127.0.0.1", ("--small",)),
    ],
)
def test_stack_binds_host_and_writes_connectable_urls(
    tmp_path: Path, bind: str, connect: str, profile: tuple[str, ...]
) -> None:
    if ":" in bind and (reason := _ipv6_loopback_missing()):
        pytest.skip(reason)
    state = tmp_path / "state"
    state.mkdir()
    proc, info = start_local_stack(state, "--host", bind, *profile)
    try:
        for key in ("http_url", "ws_url", "nats_url"):
            assert info[key].split("://", 1)[1].startswith(f"{connect}:"), (key, info[key])
        # Traefik listens on the address given (bracketed when IPv6), not on the loopback.
        static = yaml.safe_load((state / "traefik" / "traefik.yml").read_text())
        listen = f"[{bind}]" if ":" in bind else bind
        assert static["entryPoints"]["web"]["address"].startswith(f"{listen}:")
        response = httpx.get(info["http_url"] + "/health", timeout=10)
        assert response.status_code == 200
        health = asyncio.run(_ws_health(info["ws_url"], info["admin_token"]))
        assert health["ok"] is True
    finally:
        assert stop_local_stack(proc) == 0
