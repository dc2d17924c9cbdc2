"""Connecting the Control UI to the shared real stack with the admin token, in a fresh
browser profile: its WebCrypto device asks to be paired (NOT_PAIRED with a request id, shown
on the Connect page), an operator approves, the page connects; a reload reconnects by itself.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.control_ui import ControlUi
from tests.e2e.other_client import OtherClient

pytestmark = pytest.mark.e2e


def test_connect_with_the_admin_token_then_reload_reconnects(
    page: Page, stack, admin: OtherClient, console, screenshots
) -> None:
    control = ControlUi(page, stack.http_url, stack.admin_token, admin, console, screenshots)
    try:
        control.submit_token()
        request_id = control.pairing_request()
        # The page's device is the one asking, for every scope the UI requests.
        pending = admin.call("device.pair.list")["pending"]
        mine = [p for p in pending if p["requestId"] == request_id]
        assert mine and mine[0]["deviceId"] == control.device_id, pending
        assert "operator.admin" in mine[0]["scopes"]
        expect(page.get_by_test_id("pairing-required")).to_contain_text(request_id)
        control.screenshot("connect-pairing", full_page=True)

        decided = control.approve_pairing(request_id)
        assert decided["decision"] == "approved"
        control.expect_connected()
        expect(page).to_have_url(re.compile(r"#/overview"))

        control.open("connect")
        expect(page.get_by_test_id("connect-state")).to_have_text("connected")
        expect(page.get_by_test_id("granted-scopes")).to_contain_text("operator.admin")
        # The first signed connect after approval hands the device its token, once.
        expect(page.get_by_test_id("forget-device-token")).to_be_visible()
        first_conn = page.get_by_test_id("conn-id").inner_text()
        assert first_conn
        control.screenshot("connect", full_page=True)
        console.assert_clean("on the Connect page")

        # A reload starts from scratch: the remembered token connects again by itself.
        page.reload()
        control.expect_connected()
        expect(page.get_by_test_id("conn-id")).not_to_have_text(first_conn)
        expect(page.get_by_test_id("conn-id")).to_have_text(re.compile(r"\S"))
        expect(page.get_by_test_id("pairing-required")).to_have_count(0)
        conn_id = page.get_by_test_id("conn-id").inner_text()

        def listed(entries: list[dict]) -> bool:
            return any(p["connId"] == conn_id for p in entries)

        presence = admin.presence_until(listed)  # the admin may be on the other replica
        assert listed(presence), presence
        console.assert_clean("after the reload")
    finally:
        control.forget_device()
