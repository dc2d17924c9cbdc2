"""The Control UI edits a cron job in Chromium against the shared real stack: its schedule,
its payload and whether it is enabled change through `cron.update` (only the changed
fields), an invalid edit is refused in the form with nothing sent, and Cancel leaves the
job as it was."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.control_ui import ControlUi

pytestmark = pytest.mark.e2e


@pytest.fixture
def page(operator_browser: BrowserContext) -> Iterator[Page]:
    tab = operator_browser.new_page()
    yield tab
    tab.close()


@pytest.fixture
def job(ui: ControlUi) -> Iterator[dict]:
    """A disabled job made through the API (it never fires during the test), removed after."""
    name = f"e2e edit {uuid.uuid4().hex[:8]}"
    made = ui.admin.call(
        "cron.add",
        {
            "name": name,
            "schedule": {"kind": "every", "everyMs": 6 * 3_600_000},
            "payload": {"kind": "agentTurn", "message": "before the edit"},
            "enabled": False,
        },
    )
    yield made
    ui.admin.call("cron.remove", {"jobId": made["jobId"]})


def stored(ui: ControlUi, job_id: str) -> dict:
    return next(
        j
        for j in ui.admin.call("cron.list", {"includeDisabled": True})["jobs"]
        if j["jobId"] == job_id
    )


def test_a_cron_job_is_edited_from_the_page(ui: ControlUi, page: Page, job: dict) -> None:
    ui.open("cron")
    row = page.locator(f"[data-testid=cron-job][data-job-id='{job['jobId']}']")
    expect(row).to_contain_text("every 6h")
    expect(row).to_have_attribute("data-enabled", "false")

    # The edit form starts from the job as stored.
    row.get_by_test_id("cron-edit").click()
    form = row.get_by_test_id("cron-edit-form")
    expect(form.get_by_test_id("cron-edit-name")).to_have_value(job["name"])
    expect(form.get_by_test_id("cron-edit-kind")).to_have_value("every")
    expect(form.get_by_test_id("cron-edit-every")).to_have_value("6")
    expect(form.get_by_test_id("cron-edit-every-unit")).to_have_value("h")
    expect(form.get_by_test_id("cron-edit-message")).to_have_value("before the edit")

    # Nothing changed, then an invalid expression: refused in the form, nothing written.
    form.get_by_test_id("cron-edit-save").click()
    expect(form.get_by_test_id("cron-edit-error")).to_have_text("Nothing changed.")
    form.get_by_test_id("cron-edit-kind").select_option("cron")
    form.get_by_test_id("cron-edit-expr").fill("* *")
    form.get_by_test_id("cron-edit-save").click()
    expect(form.get_by_test_id("cron-edit-error")).to_contain_text("five fields")
    assert stored(ui, job["jobId"])["updatedAtMs"] == job["updatedAtMs"]

    # A new schedule, a system event instead of the agent turn, and enabled.
    form.get_by_test_id("cron-edit-expr").fill("30 7 * * 1-5")
    form.get_by_test_id("cron-edit-tz").fill("Europe/Berlin")
    form.get_by_test_id("cron-edit-payload-kind").select_option("systemEvent")
    form.get_by_test_id("cron-edit-text").fill("weekday wake-up")
    form.get_by_test_id("cron-edit-enabled").check()
    form.get_by_test_id("cron-edit-save").click()
    expect(form).to_have_count(0)
    expect(row).to_contain_text("cron 30 7 * * 1-5 (Europe/Berlin)")
    expect(row).to_contain_text("system event: weekday wake-up")
    expect(row).to_have_attribute("data-enabled", "true")
    after = stored(ui, job["jobId"])
    assert after["schedule"] == {"kind": "cron", "expr": "30 7 * * 1-5", "tz": "Europe/Berlin"}
    assert after["payload"] == {"kind": "systemEvent", "text": "weekday wake-up"}
    assert after["enabled"] is True and after["name"] == job["name"]

    # Cancel leaves the job as it is; disable it again so it never fires.
    row.get_by_test_id("cron-edit").click()
    row.get_by_test_id("cron-edit-name").fill("not saved")
    row.get_by_test_id("cron-edit-cancel").click()
    expect(row.get_by_test_id("cron-edit-form")).to_have_count(0)
    assert stored(ui, job["jobId"])["name"] == job["name"]
    row.get_by_test_id("cron-toggle").click()
    expect(row).to_have_attribute("data-enabled", "false")
    ui.screenshot("cron-edit")
    ui.console.assert_clean("on the Cron page")
