"""The A2UI renderer in a real browser (Debian's Chromium) through the stack: a pushed
surface renders, a live update arrives, a click goes back to the session as a message, and
the strict CSP is never violated (no inline script or style anywhere)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


def _surface(title: str) -> dict:
    return {
        "surfaceId": "deploy",
        "title": title,
        "components": [
            {"type": "markdown", "markdown": "Ship **v2** now?\n\n- fast\n- safe"},
            {
                "type": "card",
                "title": "Decide",
                "children": [
                    {"type": "button", "id": "ship", "label": "Ship it", "action": "approve"},
                    {"type": "textField", "id": "note", "label": "Note"},
                ],
            },
        ],
    }


async def test_renderer_shows_surfaces_and_sends_actions(stack) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/bootstrap.sh --e2e)")
    from playwright.async_api import async_playwright

    auth = {"authorization": f"Bearer {stack.admin_token}"}
    name = f"a2ui-{uuid.uuid4().hex[:8]}"
    session = f"agent:main:{name}"
    async with httpx.AsyncClient(base_url=stack.http_url, headers=auth, timeout=15) as client:
        pushed = await client.post(
            "/a2ui/surfaces", json={"sessionKey": session, "surface": _surface("Deploy v2")}
        )
        assert pushed.status_code == 200, pushed.text
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(extra_http_headers=auth)
            page = await context.new_page()
            problems: list[str] = []
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            await page.goto(f"{stack.http_url}/a2ui/?session={session}")
            await page.get_by_role("heading", name="Deploy v2").wait_for(timeout=10_000)
            assert await page.locator("strong", has_text="v2").count() == 1  # markdown
            # A live update replaces the surface in place.
            await client.post(
                "/a2ui/surfaces", json={"sessionKey": session, "surface": _surface("Deploy v3")}
            )
            await page.get_by_role("heading", name="Deploy v3").wait_for(timeout=10_000)
            assert await page.get_by_role("heading", name="Deploy v2").count() == 0
            # A click goes back into the session.
            async with page.expect_response("**/a2ui/actions") as answer:
                await page.get_by_role("button", name="Ship it").click()
            response = await answer.value
            assert response.status == 200
            assert (await response.json())["runId"]
            await page.get_by_text("action sent").wait_for(timeout=5_000)
            await browser.close()
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p]
    assert not problems, problems
