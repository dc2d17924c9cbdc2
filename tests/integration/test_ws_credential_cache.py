"""ws-gateway's verified-credential cache against the real stack: a repeated `connect` with
the same token is admitted without asking auth (counted on the replica's /metrics), and
every way a credential stops being valid reaches the next `connect`: an API token revoked,
a device token rotated, and auth restarted with another admin token (private stack).

Connections go to one ws-gateway replica directly (with the edge proof), so its counters
are the ones that moved.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.auth_support import (
    Admin,
    Device,
    admin_session,
    remember,
    unique_ip,
    verify_request,
)
from tests.support.metrics import samples
from tests.support.ws_client import RpcError, WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = pytest.mark.integration

READ = ["operator.read"]
HITS = "aisopod_ws_credential_cache_hits_total"
MISSES = "aisopod_ws_credential_cache_misses_total"


@pytest.fixture(scope="module")
async def env(stack) -> WsStack:
    return await require_ws_stack(stack)


async def counters(replica_url: str) -> dict[str, float]:
    parts = urlsplit(replica_url)
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"http://{parts.netloc}/metrics")).text
    return {name: sum(samples(text, name)) for name in (HITS, MISSES)}


async def connect(env: WsStack, replica: str, **kwargs: Any) -> WsClient:
    headers = {**env.edge, "X-Forwarded-For": kwargs.pop("ip", unique_ip())}
    return await WsClient.connect(replica, headers=headers, **kwargs)


async def connected_once(env: WsStack, replica: str, **kwargs: Any) -> dict[str, Any]:
    client = await connect(env, replica, **kwargs)
    try:
        return client.hello
    finally:
        await client.close()


async def refused(env: WsStack, replica: str, **kwargs: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        client = await connect(env, replica, **kwargs)
        await client.close()
    return caught.value


async def learn_generation(env: WsStack, replica: str) -> None:
    """Until this replica keeps answers (it has heard auth's generation): a connect with
    the admin token that is then served from the cache."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        before = await counters(replica)
        await connected_once(env, replica, token=env.token, scopes=READ)
        if (await counters(replica))[HITS] > before[HITS]:
            return
    raise AssertionError("the replica never served the admin token from its cache")


async def test_a_second_connect_is_served_from_the_cache_and_a_revoke_applies_at_once(
    env: WsStack, admin: Admin
) -> None:
    replica = env.replicas[0]
    await learn_generation(env, replica)
    created = await admin.request("token.create", {"scopes": READ, "name": "ws-cache"})
    token = remember(created["token"])
    assert token

    before = await counters(replica)
    first = await connected_once(env, replica, token=token, scopes=READ)
    middle = await counters(replica)
    second = await connected_once(env, replica, token=token, scopes=READ)
    after = await counters(replica)
    assert middle[MISSES] == before[MISSES] + 1 and middle[HITS] == before[HITS]
    assert after[HITS] == middle[HITS] + 1 and after[MISSES] == middle[MISSES]
    assert (
        first["auth"]
        == second["auth"]
        == {
            "method": "token",
            "role": "operator",
            "scopes": READ,
        }
    )
    # A question auth has not answered (other scopes) is asked, not taken from the cache.
    await connected_once(env, replica, token=token, scopes=["operator.read", "operator.write"])
    assert (await counters(replica))[MISSES] == after[MISSES] + 1

    await admin.request("token.revoke", {"tokenId": created["tokenId"]})
    error = await refused(env, replica, token=token, scopes=READ)
    assert error.detail == "AUTH_TOKEN_MISMATCH"


async def test_a_rotated_device_token_is_refused_on_the_next_connect(
    env: WsStack, admin: Admin, stack
) -> None:
    replica = env.replicas[0]
    await learn_generation(env, replica)
    device = Device()
    ip = unique_ip()
    ask = verify_request(ip=ip, token=stack.admin_token, device=device, scopes=READ)
    pending = await admin.verify_error(ask)
    await admin.call("device.pair.approve", {"requestId": pending.data["requestId"]})
    issued = await admin.verify(verify_request(ip=ip, token=stack.admin_token, device=device,
                                               scopes=READ))  # fmt: skip
    old = remember(issued["deviceToken"])
    assert old

    # The device token alone (no proof): what the cache may keep.
    await learn_generation(env, replica)
    await connected_once(env, replica, device_token=old, scopes=READ)
    before = await counters(replica)
    hello = await connected_once(env, replica, device_token=old, scopes=READ)
    assert (await counters(replica))[HITS] == before[HITS] + 1
    assert hello["auth"]["method"] == "device_token"

    rotated = await admin.call("device.token.rotate", {"deviceId": device.id, "role": "operator"})
    remember(rotated["token"])
    error = await refused(env, replica, device_token=old, scopes=READ)
    assert error.detail == "AUTH_DEVICE_TOKEN_INVALID"
    hello = await connected_once(env, replica, device_token=rotated["token"], scopes=READ)
    assert hello["auth"]["method"] == "device_token"


async def test_a_wrong_token_is_never_cached_and_counts_toward_the_lockout(
    env: WsStack,
) -> None:
    replica = env.replicas[0]
    await learn_generation(env, replica)
    ip = unique_ip()
    before = await counters(replica)
    for _ in range(2):
        error = await refused(env, replica, token="not-a-token", scopes=READ, ip=ip)
        assert error.detail == "AUTH_TOKEN_MISMATCH"
    assert (await counters(replica))[HITS] == before[HITS]


# -- auth restarted with another admin token (its own stack: the shared one keeps its token)
@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.conftest import StackHandle, start_local_stack, stop_local_stack

    state = tmp_path_factory.mktemp("ws-credcache") / "state"
    state.mkdir()
    proc, info = start_local_stack(state, "--scale", "runtime=1")
    yield StackHandle(
        **{k: info[k] for k in ("http_url", "https_url", "ws_url", "admin_token", "nats_url")},
        state_dir=state,
        pids=info["pids"],
        launcher_pid=proc.pid,
    )
    stop_local_stack(proc)


@pytest.fixture
async def private_admin(private_stack: Any) -> AsyncIterator[Admin]:
    async with admin_session(private_stack) as session:
        yield session


def auth_pids(state_dir: Path) -> set[int]:
    """The processes auth runs in now (the launcher restarts them under new pids)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        command = b" ".join(cmdline)
        # Alone (`aisopod_auth`) or hosted with ratelimit (launcher `combined`, its plan
        # file `auth+ratelimit.json`): the default local layout hosts the two together.
        hosted = b"aisopod_auth" in command or b"auth+ratelimit" in command
        if hosted and str(state_dir).encode() in environ:
            found.add(int(entry.name))
    return found


async def test_auth_restarted_with_a_new_admin_token_voids_the_cache(
    private_stack: Any, private_admin: Admin
) -> None:
    env = await require_ws_stack(private_stack)
    replica = env.replicas[0]
    old_token = remember(private_stack.admin_token)
    assert old_token
    await learn_generation(env, replica)
    before = await counters(replica)
    await connected_once(env, replica, token=old_token, scopes=READ)
    assert (await counters(replica))[HITS] == before[HITS] + 1  # cached

    new_token = remember(secrets.token_urlsafe(32))
    assert new_token
    (private_stack.state_dir / "secrets" / "admin-token").write_text(new_token)
    old_pids = auth_pids(private_stack.state_dir)
    assert old_pids
    for pid in old_pids:
        os.kill(pid, signal.SIGTERM)
    # The launcher starts auth again; it reads the new token and announces its generation.
    deadline = time.monotonic() + 60
    while True:
        pids = auth_pids(private_stack.state_dir)
        if pids and not pids & old_pids:
            try:
                hello = await private_admin.verify(
                    verify_request(ip=unique_ip(), token=new_token, scopes=READ)
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
        elif time.monotonic() > deadline:
            raise AssertionError("auth was not restarted")
        await asyncio.sleep(0.2)
    assert hello["principal"]["id"] == "admin"

    error = await refused(env, replica, token=old_token, scopes=READ)
    assert error.detail == "AUTH_TOKEN_MISMATCH"
    ok = await connected_once(env, replica, token=new_token, scopes=READ)
    assert ok["auth"]["scopes"] == READ
