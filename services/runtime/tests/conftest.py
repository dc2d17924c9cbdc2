"""Fixtures shared by the runtime's tests that need a real nats-server (`nats_url` comes
from the repository's root conftest), and helpers the tests import (`from .conftest`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue

from aisopod.config.sections.providers import ProvidersSection


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


def providers(m1: dict[str, float]) -> ProvidersSection:
    """Provider `paid` with models m1 (at the price `m1`), m2 and free (no price), as the
    roll-up tests fold them."""
    return ProvidersSection.model_validate(
        {
            "providers": [
                {
                    "id": "paid",
                    "kind": "openai",
                    "baseUrl": "http://127.0.0.1:9/v1",
                    "models": [
                        {"id": "m1", "cost": m1},
                        {"id": "m2", "cost": {"input": 0.15, "output": 0.6}},
                        {"id": "free"},
                    ],
                }
            ]
        }
    )
