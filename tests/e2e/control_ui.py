"""Driving the Control UI in a test: connect (with the pairing of the browser's device),
navigate, take screenshots, and watch the console.

The UI always presents its WebCrypto device identity, so a fresh browser profile connecting
with the admin token is a new device: auth answers NOT_PAIRED with a request id, which an
operator (here the `admin` client) approves; the page's next attempt connects (docs/auth.md,
Pairing). A browser profile is one device; it is removed when the profile is done.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Error, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.other_client import OtherClient
from tests.support.ws_client import RpcError


class ConsoleWatch:
    """Console errors and uncaught page errors of one page, with where they happened."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self._allowed: list[re.Pattern[str]] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error {message.text} ({message.location.get('url')})")

    def _on_page_error(self, error: Error) -> None:
        self.errors.append(f"page error {error.name}: {error.message}")

    def allow(self, pattern: str) -> None:
        """Tolerate errors matching `pattern` (a test that breaks a connection on purpose
        expects the browser's own report of the failed reconnect)."""
        self._allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self._allowed)]

    def assert_clean(self, where: str) -> None:
        errors = self.unexpected()
        assert not errors, f"console errors {where}:\n" + "\n".join(errors)


class ControlUi:
    def __init__(
        self,
        page: Page,
        base_url: str,
        token: str,
        admin: OtherClient,
        console: ConsoleWatch,
        screenshots: Path,
    ) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.admin = admin
        self.console = console
        self.screenshots = screenshots
        self.device_id: str | None = None

    # -- connecting ---------------------------------------------------------------------
    def submit_token(self) -> None:
        """Open the Connect page and sign in with the admin token (the gateway URL is the
        page's own origin, `/ws`, as the form proposes)."""
        self.page.goto(f"{self.base_url}/#/connect")
        self.page.get_by_test_id("connect-token").fill(self.token)
        self.page.get_by_test_id("connect-submit").click()

    def pairing_request(self) -> str:
        """The request id the page shows while its device awaits approval."""
        expect(self.page.get_by_test_id("connect-state")).to_have_text("pairing")
        request_id = self.page.get_by_test_id("pairing-request-id").inner_text().strip()
        assert request_id and request_id != "(id not given)", request_id
        self.device_id = self.page.get_by_test_id("device-id-full").inner_text().strip()
        return request_id

    def approve_pairing(self, request_id: str) -> dict:
        decided = self.admin.call("device.pair.approve", {"requestId": request_id})
        # Retry at once rather than after the page's 10 s poll (which may just have fired:
        # then the page connects by itself and the button is gone).
        try:
            self.page.get_by_test_id("pairing-retry").click(timeout=3_000)
        except PlaywrightTimeoutError:
            expect(self.page.get_by_test_id("pairing-retry")).to_have_count(0)
        return decided

    def expect_connected(self) -> None:
        expect(self.page.get_by_test_id("conn-status")).to_have_attribute(
            "data-status", "connected"
        )

    def connect(self) -> None:
        self.submit_token()
        self.approve_pairing(self.pairing_request())
        self.expect_connected()
        # A successful sign-in from the Connect form lands on the overview.
        expect(self.page).to_have_url(re.compile(r"#/overview"))

    def open_app(self) -> None:
        """Load the UI in a profile that is already paired: it connects by itself."""
        self.page.goto(f"{self.base_url}/#/overview")
        self.expect_connected()

    def forget_device(self) -> None:
        """Close the page, then remove its device (removing it first would close the
        page's socket and start a new pairing request)."""
        self.page.close()
        if self.device_id is None:
            return
        try:
            self.admin.call("device.pair.remove", {"deviceId": self.device_id})
        except RpcError as exc:
            if exc.code != -32004:  # NOT_FOUND: removed already
                raise

    # -- pages --------------------------------------------------------------------------
    def open(self, name: str) -> None:
        """Navigate with the sidebar, like an operator (`nav-<name>`)."""
        self.page.get_by_test_id(f"nav-{name}").click()
        expect(self.page).to_have_url(re.compile(rf"#/{name}(\?|$)"))

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def record_assistant_messages(page: Page) -> None:
    """From now on, record the assistant messages of the chat log at every DOM change
    (`assistant_messages_seen`): what an operator watching the page would have seen."""
    page.evaluate(
        """() => {
          window.__assistantSeen = [];
          const log = document.querySelector('[data-testid=chat-log]');
          const assistant = '[data-testid=chat-message][data-role=assistant]';
          const text = (m) => m.querySelector('[data-testid=chat-message-text]').innerText.trim();
          new MutationObserver(() => {
            const shown = [...log.querySelectorAll(assistant)];
            window.__assistantSeen.push(shown.map((m) => [m.dataset.status, text(m)]));
          }).observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
        }"""
    )


def assistant_messages_seen(page: Page) -> list[list[tuple[str, str]]]:
    """Per recorded DOM change: the `(data-status, text)` of each assistant message shown."""
    return [
        [(status, text) for status, text in shown]
        for shown in page.evaluate("window.__assistantSeen")
    ]
