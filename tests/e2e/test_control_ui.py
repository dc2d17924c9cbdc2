"""The Control UI in Chromium against the shared real stack (issue 9): chat, approvals,
device pairing, config conflict, logs, cron, and every page rendered without console errors.

Each test drives the UI served by Caddy through Traefik (`stack.http_url`) as an operator
would, in a tab of one browser profile whose device was paired once for the module (the
pairing itself is test_ui_connect.py), while `admin` (a `WsClient` with the admin token)
plays the other side: another operator, a device asking to pair, a client waiting for an
approval.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.control_ui import ControlUi, assistant_messages_seen, record_assistant_messages
from tests.e2e.other_client import OtherClient
from tests.e2e.stack_admin import StackAdmin
from tests.support.ws_client import DeviceKey, RpcError

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(operator_browser: BrowserContext) -> Iterator[Page]:
    """A new tab of the operator's (paired) browser profile."""
    tab = operator_browser.new_page()
    yield tab
    tab.close()


@pytest.fixture
def slow_agent(ui: ControlUi) -> Iterator[str]:
    """An agent on the fake provider: its answers stream with a pause between chunks, so
    the page has a partial answer to show at a pace the test sets (`chunk_delay_ms`)."""
    agent_id = f"slow{uuid.uuid4().hex[:6]}"
    ui.admin.call("agents.create", {"id": agent_id, "name": "Slow", "model": "fake/fake-small"})
    yield agent_id
    ui.admin.call("agents.delete", {"agentId": agent_id})


def test_chat_streams_and_shows_the_final_reply(ui: ControlUi, page: Page, slow_agent: str) -> None:
    ui.open("chat")
    expect(page.get_by_test_id("chat-agent")).to_have_value("main")
    page.get_by_test_id("chat-agent").select_option(slow_agent)
    page.get_by_test_id("chat-new-session").click()
    expect(page).to_have_url(re.compile(rf"session=agent%3A{slow_agent}%3Aui-"))
    expect(page.get_by_test_id("chat-empty")).to_be_visible()
    record_assistant_messages(page)

    words = f"streaming check {uuid.uuid4().hex[:8]} one two three four five six"
    message = f"{words} [[fake:chunk_delay_ms=60]]"
    page.get_by_test_id("chat-input").fill(message)
    page.get_by_test_id("chat-input").press("Enter")

    log = page.get_by_test_id("chat-log")
    expect(log.locator("[data-testid=chat-message][data-role=user]")).to_have_text(
        re.compile(re.escape(words))
    )
    final = log.locator("[data-testid=chat-message][data-role=assistant][data-status=final]")
    expect(final).to_have_count(1)
    expect(final.get_by_test_id("chat-message-text")).to_have_text(f"echo: {words}")
    # It streamed: the page showed a partial answer before the final one.
    states = [m for shown in assistant_messages_seen(page) for m in shown]
    partial = [text for status, text in states if status == "streaming"]
    assert partial, states
    assert all(f"echo: {words}".startswith(text) for text in partial), partial
    expect(page.get_by_test_id("chat-abort")).to_have_count(0)

    # What the page showed is what the gateway recorded in the session transcript.
    session_key = page.get_by_test_id("chat-log").get_attribute("data-session")
    history = ui.admin.call("chat.history", {"sessionKey": session_key})["messages"]
    assert [m["content"] for m in history] == [message, f"echo: {words}"]
    ui.screenshot("chat")
    ui.console.assert_clean("on the Chat page")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(final).to_be_visible()
    ui.screenshot("chat-phone")
    ui.console.assert_clean("on the Chat page (phone size)")


def test_a_failed_run_shows_its_error_live_and_after_a_reload(
    ui: ControlUi, page: Page, slow_agent: str
) -> None:
    ui.open("chat")
    page.get_by_test_id("chat-agent").select_option(slow_agent)
    page.get_by_test_id("chat-new-session").click()
    expect(page).to_have_url(re.compile(rf"session=agent%3A{slow_agent}%3Aui-"))
    expect(page.get_by_test_id("chat-empty")).to_be_visible()

    # The fake provider refuses the request (401 is not retried): the run fails at once.
    message = f"failing check {uuid.uuid4().hex[:8]} [[fake:status=401]]"
    page.get_by_test_id("chat-input").fill(message)
    page.get_by_test_id("chat-input").press("Enter")

    log = page.get_by_test_id("chat-log")
    failed = log.locator("[data-testid=chat-message][data-role=assistant][data-status=error]")
    expect(failed).to_have_count(1)
    expect(failed.get_by_test_id("chat-run-error")).to_contain_text("401")
    live_error = failed.get_by_test_id("chat-run-error").inner_text()

    # The transcript holds the failure, so a reload shows the same notice, once.
    session_key = log.get_attribute("data-session")
    history = ui.admin.call("chat.history", {"sessionKey": session_key})["messages"]
    assert [(m["role"], m.get("stopReason")) for m in history] == [
        ("user", None),
        ("assistant", "error"),
    ]
    assert history[1]["error"] == live_error
    page.reload()
    log = page.get_by_test_id("chat-log")
    expect(log.locator("[data-testid=chat-message][data-role=user]")).to_have_count(1)
    assistant = log.locator("[data-testid=chat-message][data-role=assistant]")
    expect(assistant).to_have_count(1)
    expect(assistant).to_have_attribute("data-status", "error")
    expect(assistant.get_by_test_id("chat-run-error")).to_have_text(live_error)
    ui.console.assert_clean("on the Chat page after a failed run")


def test_an_approval_from_another_client_is_resolved_from_the_page(
    ui: ControlUi, page: Page
) -> None:
    ui.open("approvals")
    expect(page.get_by_test_id("approvals-pending")).to_be_visible()
    command = f"echo e2e-{uuid.uuid4().hex[:10]}"
    request = ui.admin.call(
        "exec.approval.request", {"command": command, "cwd": "/tmp", "timeoutMs": 60_000}
    )
    waiting = ui.admin.submit(
        lambda ws: ws.call(
            "exec.approval.waitDecision", {"id": request["id"], "timeoutMs": 50_000}, timeout=55
        )
    )

    card = page.locator(f"[data-testid=approval-card][data-id='{request['id']}']")
    expect(card).to_have_attribute("data-state", "pending")
    expect(card.get_by_test_id("approval-command")).to_have_text(command)
    expect(page.get_by_test_id("nav-approvals-count")).to_be_visible()
    ui.screenshot("approvals")

    card.get_by_test_id("approval-allow-once").click()
    decided = waiting.result(timeout=30)
    assert (decided["id"], decided["decision"]) == (request["id"], "allow-once")
    resolved = page.locator(f"[data-testid=approval-card][data-id='{request['id']}']")
    expect(resolved).to_have_attribute("data-state", "resolved")
    expect(resolved.get_by_test_id("approval-decision")).to_contain_text("allow-once")
    # A second decision is refused: the request is settled on the gateway.
    with pytest.raises(RpcError) as second:
        ui.admin.call("exec.approval.resolve", {"id": request["id"], "decision": "deny"})
    assert second.value.code == -32009  # CONFLICT
    ui.console.assert_clean("on the Approvals page")


def test_the_approvals_queue_survives_a_reload(ui: ControlUi, page: Page) -> None:
    # Asked before the page exists: it never saw the `exec.approval.requested` event.
    command = f"echo queued-{uuid.uuid4().hex[:10]}"
    request = ui.admin.call("exec.approval.request", {"command": command, "timeoutMs": 60_000})
    try:
        ui.open("approvals")
        card = page.locator(f"[data-testid=approval-card][data-id='{request['id']}']")
        expect(card).to_have_attribute("data-state", "pending")
        expect(card.get_by_test_id("approval-command")).to_have_text(command)
        page.reload()
        expect(card).to_have_attribute("data-state", "pending")
        expect(page.get_by_test_id("nav-approvals-count")).to_be_visible()
    finally:
        ui.admin.call("exec.approval.resolve", {"id": request["id"], "decision": "deny"})
    expect(card).to_have_attribute("data-state", "resolved")
    ui.console.assert_clean("on the Approvals page after a reload")


def test_a_device_pairing_is_approved_from_the_page(ui: ControlUi, page: Page, stack) -> None:
    ui.open("devices")
    expect(page.get_by_test_id("devices-pending")).to_be_visible()
    device = DeviceKey()
    with pytest.raises(RpcError) as refused:
        OtherClient.connect(
            stack.ws_url,
            runner=ui.admin.runner,
            token=stack.admin_token,
            device=device,
            scopes=["operator.read"],
        )
    assert refused.value.detail == "NOT_PAIRED"
    request_id = refused.value.data["requestId"]

    row = page.locator(f"[data-testid=device-pending][data-request-id='{request_id}']")
    expect(row).to_have_attribute("data-device-id", device.device_id)
    expect(row).to_contain_text("operator.read")
    expect(row).to_contain_text("aisopod-tests")  # the client that asked
    ui.screenshot("devices")

    row.get_by_test_id("device-approve").click()
    expect(row).to_have_count(0)
    paired = page.locator(f"[data-testid=device-paired][data-device-id='{device.device_id}']")
    expect(paired).to_be_visible()

    client = OtherClient.connect(
        stack.ws_url,
        runner=ui.admin.runner,
        token=stack.admin_token,
        device=device,
        scopes=["operator.read"],
    )
    try:
        assert client.ws.hello["auth"]["scopes"] == ["operator.read"]
        assert client.ws.hello["auth"].get("deviceToken")
        assert client.call("health")["ok"] is True
    finally:
        client.close()
        ui.admin.call("device.pair.remove", {"deviceId": device.device_id})
    ui.console.assert_clean("on the Devices page")


def test_a_config_edit_conflict_shows_both_versions_and_reapplies(
    ui: ControlUi, page: Page, stack, loop_thread
) -> None:
    admin_ops = StackAdmin(stack, loop_thread)
    with (
        admin_ops.config_restored(),
        admin_ops.api_token(["operator.admin"], "e2e: the other operator") as token,
    ):
        other = OtherClient.connect(stack.ws_url, runner=loop_thread, token=token)
        try:
            ui.open("config")
            before = other.call("config.get")
            mine = before["config"]["cron"]["runHistory"] + 7
            theirs = before["config"]["tools"]["timeoutMs"] + 1234
            expect(page.get_by_test_id("config-hash")).to_have_attribute(
                "data-hash", before["hash"]
            )

            # The operator edits a field in the page…
            page.get_by_test_id("config-field-cron.runHistory").fill(str(mine))
            expect(page.get_by_test_id("config-form-patch")).to_contain_text(
                f'"runHistory": {mine}'
            )
            # …while another operator changes the config on the gateway.
            other.call(
                "config.patch",
                {"patch": {"tools": {"timeoutMs": theirs}}, "baseHash": before["hash"]},
            )
            expect(page.get_by_test_id("config-remote-change")).to_be_visible()

            page.get_by_test_id("config-save-form").click()
            conflict = page.get_by_test_id("config-conflict")
            # Saved from the bottom of the form, the conflict (at the top) comes into view.
            expect(conflict).to_be_in_viewport()
            expect(page.get_by_test_id("config-conflict-mine")).to_contain_text(
                f'"runHistory": {mine}'
            )
            expect(page.get_by_test_id("config-conflict-theirs")).to_contain_text(
                f'"timeoutMs": {theirs}'
            )
            ui.screenshot("config")

            page.get_by_test_id("config-reapply").click()
            expect(page.get_by_test_id("config-saved")).to_be_visible()
            expect(conflict).to_have_count(0)
            after = other.call("config.get")
            assert after["config"]["cron"]["runHistory"] == mine
            assert after["config"]["tools"]["timeoutMs"] == theirs
            expect(page.get_by_test_id("config-hash")).to_have_attribute("data-hash", after["hash"])
            ui.console.assert_clean("on the Config page")
        finally:
            other.close()


def test_a_config_field_typed_into_as_soon_as_it_shows_keeps_what_was_typed(
    ui: ControlUi, page: Page
) -> None:
    # CI once read "5057" after typing "57" over 50: the field showed before it had its loaded
    # value, which then landed between Playwright's select-all and its typing. Typing the
    # moment the field appears, several loads in a row, is where that window sits.
    ui.open("config")
    for attempt in range(16):
        page.reload()
        field = page.get_by_test_id("config-field-cron.runHistory")
        typed = str(900 + attempt)
        field.fill(typed)
        expect(field).to_have_value(typed)
        expect(page.get_by_test_id("config-form-patch")).to_contain_text(f'"runHistory": {typed}')
    page.get_by_test_id("config-reset-form").click()
    expect(page.get_by_test_id("config-form-patch")).to_have_count(0)
    ui.console.assert_clean("on the Config page")


def test_logs_tail_shows_a_new_line_filtered_by_service(ui: ControlUi, page: Page, stack) -> None:
    ui.open("logs")
    page.get_by_test_id("logs-service").fill("auth")
    lines = page.get_by_test_id("log-line")
    expect(lines.first).to_have_attribute("data-service", "auth")
    expect(page.locator("[data-testid=log-line]:not([data-service=auth])")).to_have_count(0)

    # An action that makes the auth service log a line naming a device of this test:
    # a device is paired, then removed (auth orders its connections closed).
    device = DeviceKey()
    with pytest.raises(RpcError) as refused:
        OtherClient.connect(
            stack.ws_url, runner=ui.admin.runner, token=stack.admin_token, device=device
        )
    ui.admin.call("device.pair.approve", {"requestId": refused.value.data["requestId"]})
    ui.admin.call("device.pair.remove", {"deviceId": device.device_id})

    new_line = page.locator("[data-testid=log-line][data-service=auth]", has_text=device.device_id)
    expect(new_line).to_have_count(1)
    expect(new_line).to_contain_text("ordered connections closed")
    expect(page.locator("[data-testid=log-line]:not([data-service=auth])")).to_have_count(0)
    ui.screenshot("logs")

    # Another service's filter: the auth line goes, only runtime lines come.
    page.get_by_test_id("logs-service").fill("runtime")
    expect(new_line).to_have_count(0)
    expect(lines.first).to_have_attribute("data-service", "runtime")
    expect(page.locator("[data-testid=log-line]:not([data-service=runtime])")).to_have_count(0)
    ui.console.assert_clean("on the Logs page")


def test_a_cron_job_is_added_run_and_removed_from_the_page(ui: ControlUi, page: Page) -> None:
    ui.open("cron")
    name = f"e2e job {uuid.uuid4().hex[:8]}"
    session_key = f"agent:main:e2e-cron-{uuid.uuid4().hex[:8]}"
    page.get_by_test_id("cron-name").fill(name)
    page.get_by_test_id("cron-kind").select_option("every")
    page.get_by_test_id("cron-every").fill("6")
    page.get_by_test_id("cron-every-unit").select_option("h")
    page.get_by_test_id("cron-session").fill(session_key)
    page.get_by_test_id("cron-message").fill("cron says hello")
    page.get_by_test_id("cron-add-submit").click()

    job = page.get_by_test_id("cron-job").filter(has_text=name)
    expect(job).to_contain_text("every 6h")
    expect(job).to_have_attribute("data-enabled", "true")
    job_id = job.get_attribute("data-job-id")
    listed = [j for j in ui.admin.call("cron.list")["jobs"] if j.get("jobId") == job_id]
    assert listed and listed[0]["schedule"] == {"kind": "every", "everyMs": 6 * 3_600_000}

    job.get_by_test_id("cron-run-now").click()
    expect(job.get_by_test_id("cron-run-started")).to_be_visible()
    # The run is an agent turn in the job's session; its record turns ok when it ends.
    expect(job.get_by_test_id("cron-run").first).to_contain_text("ok")
    history = ui.admin.call("chat.history", {"sessionKey": session_key})["messages"]
    assert [m["content"] for m in history] == ["cron says hello", "echo: cron says hello"]
    ui.screenshot("cron")
    ui.console.assert_clean("on the Cron page")

    job.get_by_test_id("cron-remove").click()
    job.get_by_test_id("cron-remove-confirm").click()
    expect(job).to_have_count(0)
    assert all(j.get("jobId") != job_id for j in ui.admin.call("cron.list")["jobs"])
    ui.admin.call("sessions.delete", {"key": session_key})
    ui.console.assert_clean("on the Cron page")


def test_every_page_renders_live_data_without_console_errors(
    ui: ControlUi, page: Page, stack
) -> None:
    ui.open("overview")
    expect(page.get_by_test_id("health-ok")).to_have_text(re.compile("healthy", re.I))
    for service in ("auth", "runtime", "ws-gateway"):
        expect(
            page.locator(f"[data-testid=health-service][data-service={service}]")
        ).to_be_visible()
    expect(page.get_by_test_id("presence-row").filter(has_text="Control UI")).not_to_have_count(0)
    expect(page.locator("[data-testid=status-instance][data-service=ws-gateway]")).to_have_count(
        len(stack.pids["ws-gateway"])
    )
    # The status card's count of connections comes to agree with the clients listed, this
    # page's own included, whose presence is written after the page first read the status.
    counted = page.locator("[data-testid=status-summary] dt:text-is('Connections') + dd")
    listed = page.get_by_test_id("overview-presence").locator(".badge").first
    deadline = time.monotonic() + 30
    while counted.inner_text() != listed.inner_text():
        assert time.monotonic() < deadline, (counted.inner_text(), listed.inner_text())
        page.wait_for_timeout(100)
    ui.screenshot("overview")
    ui.console.assert_clean("on the Overview page")

    ui.open("sessions")
    expect(page.get_by_test_id("session-row").first).to_be_visible()
    ui.screenshot("sessions")
    ui.console.assert_clean("on the Sessions page")

    ui.open("agents")
    expect(page.locator("[data-testid=agent-row][data-id=main]")).to_be_visible()
    ui.screenshot("agents")
    ui.console.assert_clean("on the Agents page")

    # Phone size: the navigation folds behind the menu button.
    page.set_viewport_size({"width": 390, "height": 844})
    ui.page.get_by_test_id("nav-toggle").click()
    ui.open("overview")
    expect(page.get_by_test_id("health-ok")).to_be_visible()
    expect(page.get_by_test_id("status-instance").first).to_be_visible()
    expect(page.get_by_test_id("nav-overview")).not_to_be_in_viewport()
    ui.screenshot("overview-phone")
    ui.console.assert_clean("on the Overview page (phone size)")


def test_an_agent_file_is_edited_and_a_conflict_is_reloaded(ui: ControlUi, page: Page) -> None:
    agent_id = f"files{uuid.uuid4().hex[:6]}"
    ui.admin.call("agents.create", {"id": agent_id, "name": "Filer"})
    try:
        ui.open("agents")
        row = page.locator(f"[data-testid=agent-row][data-id={agent_id}]")
        row.get_by_test_id("agent-files-toggle").click()
        row.locator("[data-testid=agent-file-tab][data-name='SOUL.md']").click()
        content = row.get_by_test_id("agent-file-content")
        expect(content).to_have_value("")
        content.fill("Warm and brief.")
        row.get_by_test_id("agent-file-save").click()
        expect(row.locator("[data-testid=agent-file-tab][data-name='SOUL.md']")).to_contain_text(
            "rev 1"
        )
        saved = ui.admin.call("agents.files.get", {"agentId": agent_id, "name": "SOUL.md"})
        assert (saved["file"]["content"], saved["file"]["revision"]) == ("Warm and brief.", 1)

        # Another operator saves meanwhile: this page's save is refused, not lost silently.
        ui.admin.call(
            "agents.files.set",
            {"agentId": agent_id, "name": "SOUL.md", "content": "Theirs.", "expectedRevision": 1},
        )
        content.fill("Mine.")
        row.get_by_test_id("agent-file-save").click()
        expect(row.get_by_test_id("agent-file-conflict")).to_contain_text("now revision 2")
        row.get_by_test_id("agent-file-reload").click()
        expect(content).to_have_value("Theirs.")
        expect(row.get_by_test_id("agent-file-conflict")).to_have_count(0)
        ui.console.assert_clean("on the Agents page (files)")
    finally:
        ui.admin.call("agents.delete", {"agentId": agent_id})
