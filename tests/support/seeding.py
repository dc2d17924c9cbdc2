"""What the runtime does at first start, for suites that run an edge service without one:
provision the deployment's JetStream state and seed the configuration document (services
that may not write the configuration wait for it)."""

from __future__ import annotations

from pathlib import Path

import nats

from aisopod.config.store import ConfigStore, load_seed_file
from aisopod.settings import nats_servers
from aisopod.state import bucket_name, ensure_state
from aisopod.subjects import Subjects


async def seed_deployment(nats_url: str, prefix: str, seed_file: Path) -> None:
    nc = await nats.connect(nats_servers(nats_url))
    try:
        js = nc.jetstream()
        await ensure_state(js, Subjects(prefix))
        store = ConfigStore(await js.key_value(bucket_name(prefix, "config")))
        await store.seed(load_seed_file(seed_file))
    finally:
        await nc.close()
