"""`aisopod token` and `aisopod devices` against the running stack, as a user runs them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import sys

import httpx
import pytest

from aisopod_ops.cli import build_parser
from tests.integration.auth_support import (
    Admin,
    Device,
    next_matching,
    remember,
    unique_ip,
    verify_request,
)

pytestmark = pytest.mark.integration


def _argv(stack, args: tuple[str, ...]) -> list[str]:
    return [*args, "--nats-url", stack.nats_url, "--state-dir", str(stack.state_dir)]


def aisopod_process(stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: a new process."""
    return subprocess.run(
        [sys.executable, "-m", "aisopod_ops.cli", *_argv(stack, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def aisopod(stack, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command line through the same parser and handlers, in this process (a new
    interpreter per call costs seconds on a loaded machine; `aisopod_process` proves the
    entry point)."""

    def run() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        parsed = build_parser().parse_args(_argv(stack, args))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = parsed.handler(parsed)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return await asyncio.to_thread(run)


async def test_token_create_use_list_revoke(stack, admin: Admin) -> None:
    created = aisopod_process(stack, "token", "create", "--scopes", "operator.read", "--name", "ci")
    assert created.returncode == 0, created.stderr
    token = remember(created.stdout.strip())
    assert token and "\n" not in token
    token_id = created.stderr.split()[1].rstrip(":")

    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": unique_ip()}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        ok = await client.get(f"{stack.http_url}/status", headers=headers)
        assert ok.status_code == 200  # and now in http-api's cache of verified tokens
        write = await client.post(f"{stack.http_url}/tools/invoke", headers=headers, json={})
        assert write.status_code == 403  # operator.read only
    as_api = await admin.verify({"bearer": token, "clientIp": unique_ip()})
    assert as_api["principal"]["id"] == f"token:{token_id}"
    assert as_api["principal"]["scopes"] == ["operator.read"]
    hello = await admin.verify(
        verify_request(ip=unique_ip(), token=token, scopes=["operator.read", "operator.write"])
    )
    assert hello["principal"]["scopes"] == ["operator.read"]

    listed = await aisopod(stack, "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tokens = {t["tokenId"]: t for t in json.loads(listed.stdout)["tokens"]}
    assert tokens[token_id]["scopes"] == ["operator.read"] and tokens[token_id]["name"] == "ci"
    assert token not in listed.stdout

    async with admin.listen("aisopod.control.connections.close") as closes:
        revoked = await aisopod(stack, "token", "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        order = await next_matching(
            closes, lambda o: o.get("principalId") == f"token:{token_id}", 1
        )
    assert order["reason"] == "token revoked"
    refused = await admin.verify_error(verify_request(ip=unique_ip(), token=token))
    assert refused.detail_code == "AUTH_TOKEN_MISMATCH"
    # The closing order also emptied http-api's cache: the API refuses the token at once.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        after = await client.get(f"{stack.http_url}/status", headers=headers)
    assert after.status_code == 401
    again = await aisopod(stack, "token", "revoke", token_id)
    assert again.returncode == 1 and "NOT_FOUND" in again.stderr


async def test_token_admin_subjects_need_an_admin_principal(stack, admin: Admin) -> None:
    from aisopod.errors import Forbidden
    from aisopod.principal import Principal

    reader = Principal(id="reader", scopes=("operator.read",))
    with pytest.raises(Forbidden):
        await admin.request("token.create", {"scopes": ["operator.admin"]}, principal=reader)


async def test_devices_list_approve_revoke(stack, admin: Admin) -> None:
    device = Device()
    ip = unique_ip()
    ask = verify_request(ip=ip, token=stack.admin_token, device=device, scopes=["operator.read"])
    request_id = (await admin.verify_error(ask)).data["requestId"]

    listed = await aisopod(stack, "devices", "list")
    assert listed.returncode == 0, listed.stderr
    assert request_id in listed.stdout

    approved = await aisopod(stack, "devices", "approve", request_id)
    assert approved.returncode == 0, approved.stderr
    assert device.id in approved.stdout
    hello = await admin.verify(
        verify_request(ip=ip, token=stack.admin_token, device=device, scopes=["operator.read"])
    )
    token = remember(hello["deviceToken"])
    assert token

    paired = json.loads((await aisopod(stack, "devices", "list", "--json")).stdout)["paired"]
    assert any(d["deviceId"] == device.id for d in paired)

    revoked = await aisopod(stack, "devices", "revoke", device.id)
    assert revoked.returncode == 0, revoked.stderr
    refused = await admin.verify_error(verify_request(ip=unique_ip(), device_token=token))
    assert refused.detail_code == "AUTH_DEVICE_TOKEN_INVALID"

    other = Device()
    ask = verify_request(ip=ip, token=stack.admin_token, device=other, scopes=["operator.read"])
    other_request = (await admin.verify_error(ask)).data["requestId"]
    rejected = await aisopod(stack, "devices", "reject", other_request)
    assert rejected.returncode == 0 and "rejected" in rejected.stdout
    unknown = await aisopod(stack, "devices", "approve", other_request)
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
