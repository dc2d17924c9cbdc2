"""Schemathesis over an OpenAPI document: a few generated cases per operation, no shrinking,
checked for server errors; every operation's failure reported together. Used in process
(services/http-api/tests) and against the whole stack (tests/integration)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

SKIP = ("/canvas/__aisopod/events", "/a2ui/events")  # endless streams by design


def server_errors(
    document: dict, base_url: str, headers: dict[str, str], *, examples: int, timeout: float
) -> list[str]:
    """The operations that answered a 5xx (or failed otherwise), as text."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue

        @settings(
            max_examples=examples,
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=base_url, headers=headers, timeout=timeout)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            check()
        except Exception as exc:  # every operation's failure, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return failures
