"""Fixtures shared by the integration suites, and their ordering: suites marked
`after_all` (the log audit of test_security_logs.py) run after every other test, whatever
their file names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from aisopod.bus import Bus
from aisopod.settings import ServiceSettings
from tests.integration.auth_support import Admin, admin_session, remember


@pytest.fixture
async def admin(stack) -> AsyncIterator[Admin]:
    """The admin user's NATS session (its token is remembered for the log audit)."""
    remember(stack.admin_token)
    async with admin_session(stack) as session:
        yield session


@pytest.fixture(scope="module")
async def bus(stack) -> AsyncIterator[Bus]:
    """A service-side bus on the shared stack, as the NATS admin user (a module's own
    `bus` fixture, e.g. on a private stack, takes its place)."""
    settings = ServiceSettings(
        nats_url=stack.nats_url, nats_user="admin", nats_password=stack.nats_password("admin")
    )
    connected = await Bus.connect(settings)
    yield connected
    await connected.close()


@pytest.fixture
async def async_sdk(stack) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official async OpenAI client on the stack's /v1, as the admin token, no retries."""
    client = openai.AsyncOpenAI(
        base_url=stack.http_url + "/v1", api_key=stack.admin_token, max_retries=0
    )
    yield client
    await client.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("after_all")]
    if last:
        marked = {id(item) for item in last}
        items[:] = [item for item in items if id(item) not in marked] + last
