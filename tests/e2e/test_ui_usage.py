"""The Control UI's usage page in Chromium against the shared real stack: the totals, the
per-model table and the cost match what the gateway counted, the chart (uPlot) draws the
series, and a spent budget shows as refusing runs."""

from __future__ import annotations

import copy
import re
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
def priced_agent(ui: ControlUi) -> Iterator[str]:
    """An agent on the fake's `fake-large`, priced for the test and given a small monthly
    budget; the configuration is restored afterwards."""
    agent_id = f"use{uuid.uuid4().hex[:6]}"
    ui.admin.call("agents.create", {"id": agent_id, "name": agent_id, "model": "fake/fake-large"})
    before = ui.admin.call("config.get")
    # A copy: `before["config"]` is what the teardown writes back, so pricing it in place
    # would leave fake-large priced for every later test on the shared stack.
    providers = copy.deepcopy(before["config"]["models"]["providers"])
    fake = next(p for p in providers if p["id"] == "fake")
    large = next(m for m in fake["models"] if m["id"] == "fake-large")
    large["cost"] = {"input": 3, "output": 15}  # the fake's other models stay as they are
    patch = {
        "models": {"providers": providers},
        "usage": {"budgets": {"agents": {agent_id: {"monthlyTokens": 20}}}},
    }
    ui.admin.write_config("config.apply", {"patch": patch, "baseHash": before["hash"]}, timeout=30)
    yield agent_id
    current = ui.admin.call("config.get")
    restored = ui.admin.write_config(
        "config.apply", {"config": before["config"], "baseHash": current["hash"]}, timeout=30
    )
    assert restored["hash"] == before["hash"], "the shared stack's config was not restored"
    ui.admin.call("agents.delete", {"agentId": agent_id})


def test_the_usage_page_shows_totals_cost_chart_and_a_spent_budget(
    ui: ControlUi, page: Page, priced_agent: str
) -> None:
    for i in range(2):
        started = ui.admin.call(
            "chat.send",
            {"sessionKey": f"agent:{priced_agent}:ui{i}", "message": f"count these words {i}"},
        )
        done = ui.admin.call("agent.wait", {"runId": started["runId"], "timeoutMs": 20_000})
        assert done["status"] == "ok"
    counted = ui.admin.call("usage.status", {"agentId": priced_agent, "bucket": "hour"})
    priced = ui.admin.call("usage.cost", {"agentId": priced_agent})
    totals = counted["totals"]
    assert totals["runs"] == 2 and priced["totalUsd"] > 0

    ui.open("usage")
    page.get_by_test_id("usage-agent").select_option(priced_agent)
    expect(page.get_by_test_id("usage-total-runs")).to_have_text("2")
    expect(page.get_by_test_id("usage-total-tokens")).to_have_attribute(
        "data-value", str(totals["totalTokens"])
    )
    cost = page.get_by_test_id("usage-total-cost")
    expect(cost).to_have_attribute("data-value", re.compile(r"\d"))
    assert float(cost.get_attribute("data-value") or "nan") == pytest.approx(priced["totalUsd"])
    row = page.locator("[data-testid=usage-model-row][data-model='fake/fake-large']")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("usage-model-cost")).to_have_text(re.compile(r"^\$0\.0"))

    # The chart: uPlot's canvas with one point per hour of the week, and its legend.
    chart = page.get_by_test_id("usage-chart")
    expect(chart).to_have_attribute("data-points", re.compile(r"^16[89]$"))
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart.locator(".u-legend")).to_contain_text("Completion")
    page.get_by_test_id("usage-metric").select_option("cost")
    expect(chart).to_have_attribute("data-series", "Cost (USD)")
    expect(chart.locator(".u-legend")).to_contain_text("Cost (USD)")

    # 2 runs spent more than the 20-token budget: the page says new runs are refused.
    budget = page.locator(f"[data-testid=usage-budget-row][data-budget='agent:{priced_agent}']")
    expect(budget).to_have_attribute("data-exhausted", "true")
    expect(budget).to_contain_text("new runs refused")
    ui.screenshot("usage", full_page=True)
    ui.console.assert_clean("on the Usage page")
