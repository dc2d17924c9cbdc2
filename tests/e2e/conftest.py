"""Browser tests of the Control UI: Playwright driving Debian's Chromium (no download).

Fixtures: `admin` (a second gateway client with the admin token, `OtherClient`), `ui` (the
page connected to the shared stack, its browser device paired; see `ControlUi`), `console`
(console and page errors of the test's page, asserted empty at the end of each test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.control_ui import ConsoleWatch, ControlUi
from tests.e2e.other_client import EventLoopThread, OtherClient, require_ws_route

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

# A loaded 2-core machine: Playwright's 5 s default is too tight for a page that waits
# on the gateway, and a real failure still ends well within the suite's budget.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh --e2e (installs chromium)")
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        ],
    }


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[EventLoopThread]:
    runner = EventLoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def admin(stack, loop_thread: EventLoopThread) -> Iterator[OtherClient]:
    """Another operator client (admin token) on the shared stack, through Traefik."""
    require_ws_route(stack.ws_url, loop_thread)
    client = OtherClient.connect(stack.ws_url, runner=loop_thread, token=stack.admin_token)
    yield client
    client.close()


@pytest.fixture
def console(page: Page) -> Iterator[ConsoleWatch]:
    watch = ConsoleWatch(page)
    yield watch
    watch.assert_clean("at the end of the test")


@pytest.fixture
def ui(page: Page, stack, admin: OtherClient, console: ConsoleWatch, screenshots: Path):
    """The Control UI at `stack.http_url`, connected with the admin token (pairing of the
    browser's device approved by `admin`); the device is forgotten afterwards."""
    control = ControlUi(page, stack.http_url, stack.admin_token, admin, console, screenshots)
    control.connect()
    yield control
    control.forget_device()
