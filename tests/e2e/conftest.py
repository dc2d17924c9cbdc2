"""Browser tests of the Control UI: Playwright driving Debian's Chromium (no download).

Fixtures: `admin` (a second gateway client with the admin token, `OtherClient`),
`operator_browser` (a browser profile whose device is paired, once per module), `ui` (the
test's page opened on the UI and connected; see `ControlUi`), `console` (console and page
errors of the test's page, asserted empty at the end of each test).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    BrowserType,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.e2e.control_ui import ConsoleWatch, ControlUi
from tests.e2e.other_client import EventLoopThread, OtherClient
from tests.e2e.private_stack import PrivateStack
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.ws_client import RpcError

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
        "args": CHROMIUM_ARGS,
    }


# Playwright's sync API marks its event loop as running in this thread while it is started,
# and pytest-playwright starts it for the whole session: the asyncio suites that run after
# these tests (tests/integration) could not run their loop. So Playwright and the browser
# live for this package only (tests/e2e/__init__.py makes it one).
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(browser_type_launch_args: dict, browser_type: BrowserType):
    return lambda **kwargs: browser_type.launch(**{**browser_type_launch_args, **kwargs})


@pytest.fixture(scope="package")
def browser(launch_browser) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="package")
def browser_context_args() -> dict:
    return {}


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the walk-through's screenshots go: docs/screenshots only when asked for
    (`make screenshots`), so a test run leaves the checkout clean."""
    if os.environ.get("AISOPOD_SCREENSHOTS") != "docs":
        return tmp_path_factory.mktemp("screenshots")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="package")
def loop_thread() -> Iterator[EventLoopThread]:
    runner = EventLoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="session", autouse=True)
def restart_stack(
    request: pytest.FixtureRequest, stack, fake_upstream, tmp_path_factory
) -> PrivateStack | None:
    """The private stack of test_ui_replica_restart.py, when that test is selected: started
    in the background once the shared stack is up, stopped after the session's own stack."""
    if not any(item.path.name == "test_ui_replica_restart.py" for item in request.session.items):
        return None
    private = PrivateStack.with_slow_model(
        tmp_path_factory.mktemp("ui-restart") / "state", fake_upstream.base_url
    )
    request.config.add_cleanup(private.stop)
    return private


@pytest.fixture(scope="package")
def admin(stack, loop_thread: EventLoopThread) -> Iterator[OtherClient]:
    """Another operator client (admin token) on the shared stack, through Traefik."""
    client = OtherClient.connect(stack.ws_url, runner=loop_thread, token=stack.admin_token)
    yield client
    client.close()


@pytest.fixture
def console(page: Page) -> Iterator[ConsoleWatch]:
    watch = ConsoleWatch(page)
    yield watch
    watch.assert_clean("at the end of the test")


@pytest.fixture(scope="module")
def operator_browser(
    browser: Browser, browser_context_args: dict, stack, admin: OtherClient, screenshots: Path
) -> Iterator[BrowserContext]:
    """One operator's browser profile for a module: signed in with the admin token and its
    device paired once (the flow test_ui_connect.py checks), so each test's tab connects
    at load with what the profile remembers. The device is removed afterwards."""
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    console = ConsoleWatch(page)
    control = ControlUi(page, stack.http_url, stack.admin_token, admin, console, screenshots)
    control.connect()
    console.assert_clean("while pairing the operator's browser")
    page.close()
    yield context
    context.close()
    try:
        admin.call("device.pair.remove", {"deviceId": control.device_id})
    except RpcError as exc:
        if exc.code != -32004:  # NOT_FOUND: a test removed it already
            raise


@pytest.fixture
def ui(
    page: Page, stack, admin: OtherClient, console: ConsoleWatch, screenshots: Path
) -> ControlUi:
    """The test's page on the Control UI, connected (see `operator_browser`)."""
    control = ControlUi(page, stack.http_url, stack.admin_token, admin, console, screenshots)
    control.open_app()
    return control
