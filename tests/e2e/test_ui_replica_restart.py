"""A ws-gateway replica restart while the Chat page streams a reply: the page reconnects
(through Traefik, to whichever replica is ready) with `resume.lastSeq` and the reply arrives
complete. A private stack (started early in the background, see private_stack.py): SIGTERM
on a shared replica would disturb every other suite.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import StackHandle
from tests.e2e.control_ui import (
    ConsoleWatch,
    ControlUi,
    assistant_messages_seen,
    record_assistant_messages,
)
from tests.e2e.other_client import EventLoopThread, OtherClient
from tests.e2e.private_stack import PrivateStack

pytestmark = pytest.mark.e2e

WORDS = 250  # × 20 ms between chunks: a reply that streams for about 5 s


@pytest.fixture(scope="module")
def private_stack(restart_stack: PrivateStack | None) -> Iterator[StackHandle]:
    assert restart_stack is not None  # the conftest starts it when this module is selected
    yield restart_stack.handle()
    restart_stack.signal_stop()


def replica_pid(stack: StackHandle, instance: str) -> int:
    """The pid of a service instance (`ws-gateway-2`) from the launcher's state file."""
    children = json.loads((Path(stack.state_dir) / "stack.json").read_text())["children"]
    return int(children[instance])


def ui_presence(admin: OtherClient, *, not_conn: str | None = None) -> dict:
    """The page's one presence entry (other than `not_conn`), once the admin's replica has it."""

    def ui_entries(presence: list[dict]) -> list[dict]:
        return [p for p in presence if p["client"]["id"] == "aisopod-control-ui"]

    def settled(presence: list[dict]) -> bool:
        ui = ui_entries(presence)
        return len(ui) == 1 and ui[0]["connId"] != not_conn

    entries = ui_entries(admin.presence_until(settled))
    assert len(entries) == 1, entries
    return entries[0]


def test_a_ws_gateway_restart_does_not_lose_the_chat_stream(
    page: Page,
    private_stack: StackHandle,
    loop_thread: EventLoopThread,
    console: ConsoleWatch,
    screenshots: Path,
) -> None:
    stack = private_stack
    admin = OtherClient.connect(stack.ws_url, runner=loop_thread, token=stack.admin_token)
    control = ControlUi(page, stack.http_url, stack.admin_token, admin, console, screenshots)
    try:
        control.connect()
        control.open("chat")
        page.get_by_test_id("chat-new-session").click()
        expect(page.get_by_test_id("chat-empty")).to_be_visible()
        before = ui_presence(admin)
        record_assistant_messages(page)

        marker = uuid.uuid4().hex[:10]
        page.get_by_test_id("chat-input").fill(
            f"[[fake:words={WORDS} chunk_delay_ms=20]] restart {marker}"
        )
        page.get_by_test_id("chat-input").press("Enter")
        assistant = page.locator("[data-testid=chat-message][data-role=assistant]")
        expect(assistant).to_have_attribute("data-status", "streaming")
        expect(assistant.get_by_test_id("chat-message-text")).to_contain_text(marker)

        # The replica holding the page's socket drains: `shutdown`, then close 1012. The
        # browser may report a failed reconnect to it (503 while draining) on the console.
        console.allow(r"WebSocket connection to '.*/ws' failed")
        os.kill(replica_pid(stack, before["instance"]), signal.SIGTERM)

        expected = " ".join(itertools.islice(itertools.cycle(["echo:", "restart", marker]), WORDS))
        final = page.locator("[data-testid=chat-message][data-role=assistant][data-status=final]")
        expect(final.get_by_test_id("chat-message-text")).to_have_text(expected, timeout=60_000)
        expect(assistant).to_have_count(1)
        expect(page.locator("[data-testid=chat-message][data-role=user]")).to_have_count(1)
        control.expect_connected()
        # Watching the page throughout: once the answer appeared it stayed, alone, and only
        # grew (a reconnect neither blanked nor repeated it).
        seen = assistant_messages_seen(page)
        first = next(i for i, shown in enumerate(seen) if shown)
        assert all(len(shown) == 1 for shown in seen[first:]), seen
        texts = [shown[0][1] for shown in seen[first:]]
        assert all(expected.startswith(t) for t in texts), texts

        # The page is on a new connection now (the old one was closed by the drain). The
        # admin client may have been on that replica too: ask on a fresh connection.
        admin.close()
        admin = OtherClient.connect(stack.ws_url, runner=loop_thread, token=stack.admin_token)
        after = ui_presence(admin, not_conn=before["connId"])
        assert after["connId"] != before["connId"], (before, after)
        assert re.fullmatch(r"ws-gateway-\d+", after["instance"]), after
        console.assert_clean("on the Chat page across the restart")
    finally:
        # A fresh admin connection: the old one may have been on the stopped replica.
        admin.close()
        control.admin = OtherClient.connect(
            stack.ws_url, runner=loop_thread, token=stack.admin_token
        )
        control.forget_device()
        control.admin.close()
