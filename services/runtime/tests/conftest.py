"""Fixtures shared by the runtime's tests that need a real nats-server (`nats_url` comes
from the repository's root conftest)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue


@pytest.fixture
async def runs_kv(nats_url: str) -> AsyncIterator[KeyValue]:
    """A fresh KV bucket of its own, as the runtime's `runs` bucket is."""
    nc = await nats.connect(nats_url)
    bucket = f"runs{uuid.uuid4().hex[:8]}"
    js = nc.jetstream()
    kv = await js.create_key_value(bucket=bucket)
    yield kv
    await js.delete_key_value(bucket)
    await nc.close()
