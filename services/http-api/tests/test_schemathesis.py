"""Schemathesis against the OpenAPI document, in process (runtime double): never a 5xx.
The same check runs against the whole stack in tests/integration/test_http_schemathesis.py."""

from __future__ import annotations

import asyncio

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from aisopod_http_api.main import build

SKIP = ("/canvas/__aisopod/events", "/a2ui/events")  # endless streams by design


def run_schemathesis(document: dict, base_url: str, headers: dict[str, str]) -> list[str]:
    """Every operation, a few generated cases each; the failures as text."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue

        @settings(
            max_examples=4,
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=base_url, headers=headers, timeout=15)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # every operation's failure, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures


async def test_no_server_errors(served, admin) -> None:
    _, app = build()
    document = app.app.openapi()
    failures = await asyncio.to_thread(run_schemathesis, document, served.url, admin)
    assert not failures, "\n\n".join(failures)
