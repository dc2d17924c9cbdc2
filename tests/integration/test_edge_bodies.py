"""Oversized request bodies through the real edge get the documented 413, not a 502.

Traefik's fast proxy (chosen for streaming, see test_edge_streaming.py) writes a request's
body before it reads the response; the http-api reads an over-limit body to its end (up
to a cap) before answering, so the 413 and its error body reach the client.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("size", [2 * 1024 * 1024, 30 * 1024 * 1024])
async def test_an_oversized_body_is_a_413_with_the_routes_error(stack, size: int) -> None:
    async with httpx.AsyncClient(base_url=stack.http_url, timeout=60) as client:
        response = await client.post(
            "/v1/chat/completions",
            content=b"x" * size,
            headers={
                "Authorization": f"Bearer {stack.admin_token}",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 413, response.text[:200]
        error = response.json()["error"]
        assert error["code"] == "payload_too_large" and "1048576" in error["message"]
        # The edge keeps serving on the same client afterwards.
        health = await client.get("/health")
        assert health.status_code == 200


async def test_an_oversized_chunked_body_is_a_413(stack) -> None:
    async def chunks():  # no Content-Length: the limit is found while reading
        for _ in range(40):
            yield b"y" * (256 * 1024)

    async with httpx.AsyncClient(base_url=stack.http_url, timeout=60) as client:
        response = await client.post(
            "/v1/chat/completions",
            content=chunks(),
            headers={
                "Authorization": f"Bearer {stack.admin_token}",
                "Content-Type": "application/json",
            },
        )
    assert response.status_code == 413, response.text[:200]
