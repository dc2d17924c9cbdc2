from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from aisopod_fake_upstream import FakeUpstream


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as running:
        yield running


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    """The shared server, with no rules left over from another test."""
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture
def client(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    # No retries unless a test asks for them: a retry would hide the error under test.
    with openai.OpenAI(base_url=fake.base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def http(fake: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.root_url, trust_env=False, timeout=10) as raw:
        yield raw


@pytest.fixture
def words() -> str:
    """Words unique to one test, so `fail_times` counts and recordings never collide."""
    return f"note {uuid.uuid4().hex[:8]} here"
