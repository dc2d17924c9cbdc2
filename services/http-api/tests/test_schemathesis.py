"""Schemathesis against the OpenAPI document, in process (runtime double): never a 5xx.
The same check runs against the whole stack in tests/integration/test_http_schemathesis.py."""

from __future__ import annotations

import asyncio

from aisopod_http_api.main import build
from tests.support.openapi_fuzz import server_errors


async def test_no_server_errors(served, admin) -> None:
    _, app = build()
    document = app.app.openapi()
    failures = await asyncio.to_thread(
        server_errors, document, served.url, admin, examples=4, timeout=15
    )
    assert not failures, "\n\n".join(failures)
