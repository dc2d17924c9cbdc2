"""The configuration document in KV `config` (key `gateway`): seed, read, compare-and-set.

`write(config, base_hash)` succeeds only when `base_hash` is the hash of the stored
document, and the KV update is conditioned on the revision read, so of two concurrent
writers with the same base exactly one wins; the other gets CONFLICT.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from aisopod import codec
from aisopod.config.model import GatewayConfig, config_hash
from aisopod.errors import Conflict, invalid_params_from_validation

log = logging.getLogger("aisopod.config")

CONFIG_KEY = "gateway"


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    config: GatewayConfig
    hash: str
    revision: int


def load_seed_file(path: Path | None) -> GatewayConfig:
    """The seed document from a YAML (or JSON, a YAML subset) file; defaults when absent."""
    if path is None or not path.exists():
        return GatewayConfig()
    # Imported here: only the service that seeds the document reads the file (~1 MiB of
    # RSS in every other service otherwise).
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the config document must be a mapping")
    return GatewayConfig.model_validate(raw)


def parse_document(document: Any) -> GatewayConfig:
    """Validate a client-supplied document; INVALID_PARAMS with the errors otherwise."""
    try:
        return GatewayConfig.model_validate(document)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


class ConfigStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def seed(self, config: GatewayConfig) -> bool:
        """Store `config` if no document exists yet; True when this call seeded it."""
        try:
            await self.kv.create(CONFIG_KEY, codec.canonical(config.document()))
            log.info("seeded the gateway configuration")
            return True
        except KeyWrongLastSequenceError:
            return False

    async def wait_seeded(self, *, poll_s: float = 0.05, max_poll_s: float = 1.0) -> None:
        """Return once a document exists: services that may not write the configuration
        start with the gateway's configuration, never with defaults of their own."""
        delay, told = poll_s, False
        while True:
            try:
                entry = await self.kv.get(CONFIG_KEY)
                if entry.value:
                    return
            except (KeyNotFoundError, KeyDeletedError):
                pass
            if not told:
                log.info("waiting for the configuration document (the runtime seeds it)")
                told = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_poll_s)

    async def load(self) -> ConfigSnapshot:
        try:
            entry = await self.kv.get(CONFIG_KEY)
        except KeyNotFoundError:
            config = GatewayConfig()
            return ConfigSnapshot(config, config.hash(), 0)
        return snapshot_from(entry.value or b"{}", entry.revision or 0)

    async def write(self, config: GatewayConfig, base_hash: str) -> ConfigSnapshot:
        current = await self.load()
        if base_hash != current.hash:
            raise Conflict(
                "the configuration changed since baseHash was read; reload and reapply",
                code="STALE_BASE_HASH",
                currentHash=current.hash,
            )
        document = config.document()
        data = codec.canonical(document)
        try:
            if current.revision:
                revision = await self.kv.update(CONFIG_KEY, data, last=current.revision)
            else:
                revision = await self.kv.create(CONFIG_KEY, data)
        except KeyWrongLastSequenceError:
            raise Conflict(
                "the configuration changed concurrently; reload and reapply",
                code="STALE_BASE_HASH",
            ) from None
        return ConfigSnapshot(config, config_hash(document), revision)


def snapshot_from(data: bytes, revision: int) -> ConfigSnapshot:
    document = codec.loads(data)
    config = GatewayConfig.model_validate(document)
    return ConfigSnapshot(config, config_hash(config.document()), revision)
