"""CORS follows the live gateway config; preflights need no credential; a real browser
on another origin can call the API only when that origin is allowed."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import nats
import pytest

from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod.errors import Conflict
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.integration


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>other origin</title><p>a page elsewhere</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origins() -> Iterator[tuple[str, str]]:
    """Two pages on origins other than the gateway's: one to allow, one not."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield tuple(f"http://127.0.0.1:{s.server_address[1]}" for s in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


async def _set_origins(stack, origins: list[str]) -> list[str]:
    """Write `cors.allowedOrigins`; returns what it was (tests restore it)."""
    nc = await nats.connect(
        stack.nats_url, user="admin", password=stack.nats_password("admin"), connect_timeout=2
    )
    try:
        store = ConfigStore(await nc.jetstream().key_value("config"))
        for _ in range(5):  # another test may write at the same time: reread and retry
            snapshot = await store.load()
            before = list(snapshot.config.cors.allowed_origins)
            document = snapshot.config.document()
            document["cors"] = {**document.get("cors", {}), "allowedOrigins": origins}
            try:
                await store.write(GatewayConfig.model_validate(document), snapshot.hash)
                return before
            except Conflict:
                await asyncio.sleep(0.1)
        raise AssertionError("could not write the config")
    finally:
        await nc.close()


def _preflight(stack, origin: str) -> httpx.Response:
    return httpx.options(
        f"{stack.http_url}/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=5,
    )


async def _wait_allowed(stack, origin: str, allowed: bool) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        response = await asyncio.to_thread(_preflight, stack, origin)
        if (response.headers.get("access-control-allow-origin") == origin) == allowed:
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{origin} allowed={allowed} never took effect")
        await asyncio.sleep(0.1)


@pytest.fixture
async def allowed_origin(stack, page_origins) -> AsyncIterator[str]:
    origin = page_origins[0]
    before = await _set_origins(stack, [origin])
    await _wait_allowed(stack, origin, True)
    try:
        yield origin
    finally:
        await _set_origins(stack, before)
        await _wait_allowed(stack, origin, origin in before)


async def test_preflight_from_allowed_and_disallowed_origins(
    stack, allowed_origin: str, page_origins
) -> None:
    allowed = await asyncio.to_thread(_preflight, stack, allowed_origin)
    # Answered by Traefik itself: no credential was sent, yet it is not a 401.
    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == allowed_origin
    assert "Authorization" in allowed.headers["access-control-allow-headers"]
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert int(allowed.headers["access-control-max-age"]) > 0
    exposed = allowed.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed and "x-request-id" in exposed
    other = page_origins[1]
    refused = await asyncio.to_thread(_preflight, stack, other)
    assert "access-control-allow-origin" not in refused.headers
    # An actual cross-origin response carries the header only for the allowed origin.
    health = await asyncio.to_thread(
        httpx.get, f"{stack.http_url}/health", headers={"Origin": allowed_origin}, timeout=5
    )
    assert health.headers["access-control-allow-origin"] == allowed_origin


async def test_allowed_origins_follow_the_live_config(stack, page_origins) -> None:
    origin = f"https://app-{uuid.uuid4().hex[:8]}.example"
    before = await _set_origins(stack, [origin])
    try:
        await _wait_allowed(stack, origin, True)
    finally:
        await _set_origins(stack, before)
    await _wait_allowed(stack, origin, False)


FETCH = """async ([url, token]) => {
  try {
    const response = await fetch(url, {headers: {Authorization: `Bearer ${token}`}});
    return {ok: true, status: response.status,
            vary: response.headers.get('Vary'), body: await response.text()};
  } catch (error) {
    return {ok: false, error: String(error)};
  }
}"""


async def test_cross_origin_fetch_in_chromium(stack, allowed_origin: str, page_origins) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            # Allowed: a preflighted request (Authorization) resolves and is readable.
            await page.goto(allowed_origin + "/")
            result = await page.evaluate(FETCH, [f"{stack.http_url}/health", stack.admin_token])
            assert result["ok"] is True, result
            assert result["status"] == 200
            assert '"ok":true' in result["body"].replace(" ", "")
            # Not allowed: the browser blocks the response (fetch rejects).
            await page.goto(page_origins[1] + "/")
            blocked = await page.evaluate(FETCH, [f"{stack.http_url}/health", stack.admin_token])
            assert blocked["ok"] is False
            assert "Failed to fetch" in blocked["error"]
        finally:
            await browser.close()
