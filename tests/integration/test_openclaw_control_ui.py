"""OpenClaw's own Control UI (from its npm package) served by us at /openclaw/, in Chromium:
the browser is refused until approved with `openclaw devices approve`, then a message sent
from the UI gets its answer and the run settles, and a session another client starts
through our own protocol appears in the UI's sessions sidebar while it is open (titled by
its first message), and a turn's tokens show on its usage page, its detail with the chart
and the message log (docs/openclaw.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.openclaw import CONTROL_UI, installed, openclaw
from tests.support.ws_client import RpcError, WsClient

pytestmark = pytest.mark.integration

if not installed() or not (CONTROL_UI / "index.html").exists():
    pytest.skip(
        "OpenClaw is not installed: scripts/bootstrap.sh --openclaw", allow_module_level=True
    )
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (scripts/bootstrap.sh --e2e)", allow_module_level=True)


async def test_ui_config_is_served_beside_the_bundle(stack) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=15) as client:
        config = (await client.get("/openclaw/control-ui-config.json")).json()
        shell = await client.get("/openclaw/")
    assert config["basePath"] == "/openclaw" and config["assistantAgentId"] == "main"
    assert shell.status_code == 200 and "OpenClaw Control" in shell.text
    # Our strict policy is for our UI; OpenClaw's bundle runs inline scripts.
    assert "content-security-policy" not in shell.headers


class WireLog:
    """The UI's requests on its WebSocket and the errors they got, by method."""

    def __init__(self) -> None:
        self.methods: dict[str, str] = {}  # request id → method
        self.errors: dict[str, set[str]] = {}  # method → error messages
        self.events: set[str] = set()  # names of the events received
        # The session keys of each whole-window `sessions.usage` answer (the usage page's).
        self.usage_listings: list[list[str]] = []
        self.answered: set[str] = set()  # request ids answered, ok or not

    def watch(self, socket: Any) -> None:
        socket.on("framesent", self._sent)
        socket.on("framereceived", self._received)

    def _sent(self, payload: str | bytes) -> None:
        frame = json.loads(payload)
        if isinstance(frame, dict) and frame.get("type") == "req":
            self.methods[frame["id"]] = frame["method"]

    def _received(self, payload: str | bytes) -> None:
        frame = json.loads(payload)
        if isinstance(frame, dict) and frame.get("type") == "event":
            self.events.add(str(frame.get("event")))
        if isinstance(frame, dict) and frame.get("type") == "res":
            self.answered.add(str(frame.get("id")))
        if isinstance(frame, dict) and frame.get("type") == "res" and not frame.get("ok"):
            method = self.methods.get(frame.get("id"), "?")
            self.errors.setdefault(method, set()).add(str(frame["error"].get("message")))
        elif isinstance(frame, dict) and frame.get("type") == "res":
            payload = frame.get("payload")
            if self.methods.get(frame.get("id")) == "sessions.usage" and isinstance(payload, dict):
                sessions = payload.get("sessions") or []
                self.usage_listings.append([str(row.get("key")) for row in sessions])

    def unanswered(self) -> list[str]:
        """The methods of the requests still waiting for their answer."""
        return sorted(m for i, m in self.methods.items() if i not in self.answered)

    def unknown(self) -> list[str]:
        return sorted(
            m for m, messages in self.errors.items() if any("unknown method" in e for e in messages)
        )


async def shown_in_sidebar(page: Any, sidebar: Any, name: str, timeout_s: float = 30) -> None:
    """Wait until the sidebar shows a session titled `name`. The sidebar shows ten rows,
    the rest behind "Show more", and a session that arrives while it is open does not go
    above the rows already shown (seen with 150 sessions: the reloaded list had it first,
    the sidebar did not): on a stack other tests filled with sessions it can be past the
    first ten."""
    row = sidebar.get_by_text(name, exact=True)
    more = sidebar.get_by_text("Show more", exact=True)
    deadline = time.monotonic() + timeout_s
    while not await row.is_visible():
        assert time.monotonic() < deadline, await sidebar.inner_text()
        if await more.count() and await more.first.is_visible():
            await more.first.click()
        await page.wait_for_timeout(100)  # the poll's period, not a condition wait


async def usage_row_shown(page: Any, wire: WireLog, key: str, timeout_s: float = 90) -> None:
    """Wait until the usage page shows the session `key`. What we answer is checked first:
    the page's own `sessions.usage` answers must list the key (else the gateway is wrong,
    and the failure says what the page got). A page whose answer listed it but that still
    does not show it is the UI's own rendering (OpenClaw's code, seen once in a full CI
    run): it is loaded again, as a user would."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    row = page.get_by_text(key, exact=True)
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(PlaywrightTimeout):
            await row.wait_for(timeout=15_000)
            return
        listed = [keys.index(key) if key in keys else None for keys in wire.usage_listings]
        assert any(at is not None for at in listed), (
            f"the page's sessions.usage answers do not list {key}: positions {listed} in "
            f"{[len(keys) for keys in wire.usage_listings]} rows; errors "
            f"{wire.errors.get('sessions.usage')}; unanswered: {wire.unanswered()}"
        )
        assert time.monotonic() < deadline, (
            f"listed at {listed} but never shown; unanswered: {wire.unanswered()}"
        )
        await page.reload()


async def usage_page_shows_a_turn(stack: Any, page: Any, wire: WireLog) -> None:
    """A turn on a fake-upstream agent (the echo model reports no usage) shows on the UI's
    usage page (`sessions.usage`, docs/openclaw.md Usage) with its token count; opening
    the session shows its detail: the chart (`sessions.usage.timeseries`) and the message
    log (`sessions.usage.logs`) with the message the turn sent."""
    name = f"usage-{uuid.uuid4().hex[:8]}"
    async with await WsClient.connect(stack.ws_url, token=stack.admin_token) as ws:
        with contextlib.suppress(RpcError):  # made by an earlier test
            await ws.call(
                "agents.create",
                {"id": "fake-small", "name": "fake-small", "model": "fake/fake-small"},
            )
        key = f"agent:fake-small:{name}"
        for message in (f"count {name}", "and once more"):
            started = await ws.call("chat.send", {"sessionKey": key, "message": message})
            await ws.call("agent.wait", {"runId": started["runId"], "timeoutMs": 30_000})
        usage = await ws.call("sessions.usage", {"key": key})
    total = usage["totals"]["totalTokens"]
    assert total > 0
    await page.goto(f"{stack.http_url}/openclaw/usage#token={stack.admin_token}")
    await usage_row_shown(page, wire, key)
    # The session's row: its key, agent, provider and model (and the time between its
    # first and last run), then its token count.
    lines = [line.strip() for line in (await page.locator("body").inner_text()).splitlines()]
    row = lines[lines.index(key) : lines.index(key) + 6]
    assert any(line.startswith("provider:fake · model:fake-small") for line in row), row
    assert str(total) in row, row
    await page.get_by_text(key, exact=True).click()
    await page.get_by_text(f"count {name}", exact=True).first.wait_for(timeout=30_000)
    asked = set(wire.methods.values())
    assert {"sessions.usage.timeseries", "sessions.usage.logs"} <= asked, asked
    assert not {"sessions.usage.timeseries", "sessions.usage.logs"} & set(wire.errors)


async def test_pair_with_the_cli_then_chat(stack, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    text = f"hello from the openclaw ui {uuid.uuid4().hex[:8]}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            wire = WireLog()
            page.on("websocket", wire.watch)
            await page.goto(f"{stack.http_url}/openclaw/#token={stack.admin_token}")
            approve = page.get_by_text(re.compile(r"openclaw devices approve \S+"))
            await approve.wait_for(timeout=30_000)
            match = re.search(r"approve (\S+)", await approve.inner_text())
            assert match is not None
            done = await asyncio.to_thread(
                openclaw, stack, tmp_path, "devices", "approve", match.group(1), "--json"
            )
            assert done.returncode == 0, done.stdout + done.stderr
            await page.get_by_role("button", name="Connect").click()
            box = page.get_by_placeholder(re.compile("Message"))
            await box.wait_for(timeout=30_000)
            await box.fill(text)
            await box.press("Enter")
            answer = page.get_by_role("paragraph").filter(has_text=f"echo: {text}")
            await answer.wait_for(timeout=30_000)
            # Settled: the UI matched the run's final event to the message it sent (the
            # run id is the idempotency key), so nothing is left "sending" or "working".
            busy = page.get_by_text(re.compile(r"^(Sending message|Working)"))
            await busy.first.wait_for(state="hidden", timeout=30_000)
            # The agent's main session is the UI's "Home", never a sidebar row (as with
            # OpenClaw). Another session, started by a client of our own protocol while the
            # UI is open, shows in the sidebar: our `sessions.changed` event makes the UI
            # reload its list, whose rows are our sessions. The row's title is the first
            # message's (`derivedTitle`), not the key's last part.
            name = f"sidebar-{uuid.uuid4().hex[:8]}"
            sidebar = page.locator(".sidebar-shell__body")
            assert await sidebar.get_by_text(name).count() == 0
            async with await WsClient.connect(stack.ws_url, token=stack.admin_token) as ws:
                started = await ws.call(
                    "chat.send", {"sessionKey": f"agent:main:{name}", "message": f"hi {name}"}
                )
                await ws.call("agent.wait", {"runId": started["runId"], "timeoutMs": 30_000})
            await shown_in_sidebar(page, sidebar, f"Hi {name}")
            assert "sessions.changed" in wire.events
            await usage_page_shows_a_turn(stack, page, wire)
            # Every call of the UI's load and chat is answered: mapped onto ours, or what
            # OpenClaw itself answers without the feature (docs/openclaw.md).
            assert wire.unknown() == [], wire.errors
            print("UI calls:", sorted(set(wire.methods.values())), "errors:", wire.errors)
        finally:
            await browser.close()
