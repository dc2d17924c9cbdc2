"""The configuration document in KV `config` (key `gateway`): seed, read, compare-and-set.

`write(config, base_hash)` succeeds only when `base_hash` is the hash of the stored
document, and the KV update is conditioned on the revision read, so of two concurrent
writers with the same base exactly one wins; the other gets CONFLICT.

A stored document that fails validation (written by an older version, or by hand) is never
fatal: `snapshot_from` keeps what can be used of it (docs/runtime-ops.md, "A stored
document that fails validation") and says what it left out, so every service starts and the
runtime can still serve `config.*` to repair it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from aisopod import codec
from aisopod.config.model import GatewayConfig, config_hash
from aisopod.errors import Conflict, invalid_params_from_validation

log = logging.getLogger("aisopod.config")

CONFIG_KEY = "gateway"


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    config: GatewayConfig
    """What the services run on: the stored document, or what could be used of it."""
    hash: str
    revision: int
    stored: dict[str, Any] | None = None
    """The stored document as it is, when it failed validation (writes merge onto it, so a
    repair loses nothing of it); None when `config` is the stored document."""
    problems: tuple[str, ...] = ()
    """What of the stored document is not in use, and why (empty when it is valid)."""
    unusable_providers: dict[str, str] = field(default_factory=dict)
    """Provider id → why its entry was left out (an entry that fails validation)."""


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
    """The snapshot of a stored document; one that fails validation is salvaged."""
    try:
        document = codec.loads(data)
    except ValueError:
        document = None
    try:
        config = GatewayConfig.model_validate(document)
    except ValidationError:
        pass
    else:
        return ConfigSnapshot(config, config_hash(config.document()), revision)
    if not isinstance(document, dict):
        # Nothing to salvage; the hash of the bytes still lets a writer name this document.
        problem = "the stored document is not a JSON object: running on the defaults"
        return ConfigSnapshot(
            GatewayConfig(), hashlib.sha256(data).hexdigest(), revision, {}, (problem,)
        )
    config, problems, unusable = salvage(document)
    return ConfigSnapshot(
        config, config_hash(document), revision, document, tuple(problems), unusable
    )


def salvage(document: dict[str, Any]) -> tuple[GatewayConfig, list[str], dict[str, str]]:
    """What can be used of a document that fails validation: a provider entry that fails is
    left out (that provider is unavailable, the others work); any other failing top-level
    section runs on its defaults. Returns the config, what was left out and why, and the
    left-out providers (id → why)."""
    remaining: dict[str, Any] = dict(document)
    problems: list[str] = []
    unusable: dict[str, str] = {}
    # Each pass removes at least one entry or section, so this ends; the bound is a guard.
    for _ in range(len(document) + _provider_count(document) + 1):
        try:
            return GatewayConfig.model_validate(remaining), problems, unusable
        except ValidationError as exc:
            faults = _faults(exc.errors(), remaining)
        if faults is None:
            break
        bad_providers, bad_sections = faults
        if bad_providers:
            remaining = _without_providers(remaining, bad_providers, problems, unusable)
        for section, why in bad_sections.items():
            del remaining[section]
            problems.append(f"{why} (section {section!r} runs on its defaults)")
    problems.append("the stored document cannot be used: running on the defaults")
    return GatewayConfig(), problems, unusable


def _faults(
    errors: list[ErrorDetails], document: dict[str, Any]
) -> tuple[dict[int, str], dict[str, str]] | None:
    """The failing provider entries (index → why) and other top-level sections (name →
    why) of `document`; None when an error is of the whole document (nothing smaller to
    leave out)."""
    providers: dict[int, str] = {}
    sections: dict[str, str] = {}
    for error in errors:
        loc = error["loc"]
        # pydantic prefixes a validator's own message with "Value error, ": noise here.
        where, why = _dotted(loc), str(error["msg"]).removeprefix("Value error, ")
        if len(loc) >= 3 and loc[:2] == ("models", "providers") and isinstance(loc[2], int):
            providers.setdefault(loc[2], f"{where}: {why}")
        elif loc and isinstance(loc[0], str) and loc[0] in document:
            sections.setdefault(loc[0], f"{where}: {why}")
        else:
            return None
    return providers, sections


def _provider_count(document: dict[str, Any]) -> int:
    models = document.get("models")
    providers = models.get("providers") if isinstance(models, dict) else None
    return len(providers) if isinstance(providers, list) else 0


def _without_providers(
    document: dict[str, Any], bad: dict[int, str], problems: list[str], unusable: dict[str, str]
) -> dict[str, Any]:
    models = dict(document["models"])
    kept = []
    for index, entry in enumerate(models["providers"]):
        if index not in bad:
            kept.append(entry)
            continue
        provider_id = entry.get("id") if isinstance(entry, dict) else None
        name = provider_id if isinstance(provider_id, str) and provider_id else f"#{index}"
        unusable[name] = bad[index]
        problems.append(f"{bad[index]} (provider {name!r} is unavailable)")
    models["providers"] = kept
    return {**document, "models": models}


def _dotted(loc: tuple[int | str, ...]) -> str:
    """`("models", "providers", 1, "apiKey")` → `models.providers[1].apiKey`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"
