"""Fixtures shared by the integration suites, and their ordering: suites marked
`after_all` (the log audit of test_security_logs.py) run after every other test, whatever
their file names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.auth_support import Admin, admin_session, remember


@pytest.fixture
async def admin(stack) -> AsyncIterator[Admin]:
    """The admin user's NATS session (its token is remembered for the log audit)."""
    remember(stack.admin_token)
    async with admin_session(stack) as session:
        yield session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("after_all")]
    if last:
        marked = {id(item) for item in last}
        items[:] = [item for item in items if id(item) not in marked] + last
