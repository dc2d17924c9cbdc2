"""Schemathesis against http-api's own OpenAPI document, through the whole stack: no 5xx.

Bounded (a few examples per operation, no shrinking) so it stays well under a minute.
The document comes from the stack itself (`/v1/openapi.json`, behind auth like all of /v1).
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.integration

SKIP = ("/canvas/__aisopod/events", "/a2ui/events")  # endless streams by design


def test_no_server_errors(stack) -> None:
    headers = {"authorization": f"Bearer {stack.admin_token}"}
    document = httpx.get(f"{stack.http_url}/v1/openapi.json", headers=headers, timeout=10)
    assert document.status_code == 200, document.text
    schema = schemathesis.openapi.from_dict(document.json())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue

        @settings(
            max_examples=3,
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=stack.http_url, headers=headers, timeout=20)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # every operation's failure, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
