"""Ordering of the integration session: suites marked `after_all` (the log audit of
test_security_logs.py) run after every other test, whatever their file names."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("after_all")]
    if last:
        marked = {id(item) for item in last}
        items[:] = [item for item in items if id(item) not in marked] + last
