"""Schemathesis against http-api's own OpenAPI document, through the whole stack: no 5xx.

Bounded (a few examples per operation, no shrinking) so it stays well under a minute.
The document comes from the stack itself (`/v1/openapi.json`, behind auth like all of /v1).
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.openapi_fuzz import server_errors

pytestmark = pytest.mark.integration


def test_no_server_errors(stack) -> None:
    headers = {"authorization": f"Bearer {stack.admin_token}"}
    document = httpx.get(f"{stack.http_url}/v1/openapi.json", headers=headers, timeout=10)
    assert document.status_code == 200, document.text
    failures = server_errors(document.json(), stack.http_url, headers, examples=3, timeout=20)
    assert not failures, "\n\n".join(failures)
