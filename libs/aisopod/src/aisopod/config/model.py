"""The gateway configuration: one pydantic model, one section per concern.

Hash = sha256 of the canonical JSON (sorted keys, no whitespace) of the whole document,
secrets included, so any change (a rotated key too) changes the hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field, SecretStr

from aisopod import codec
from aisopod.config.sections.auth import AuthSection
from aisopod.config.sections.base import Section
from aisopod.config.sections.cors import CorsSection
from aisopod.config.sections.gateway import GatewaySection
from aisopod.config.sections.heartbeat import HeartbeatSection
from aisopod.config.sections.hooks import HooksSection
from aisopod.config.sections.limits import LimitsSection
from aisopod.config.sections.misc import CronSection, LoggingSection, UiSection, UpdatesSection
from aisopod.config.sections.providers import ProvidersSection
from aisopod.config.sections.skills import SkillsSection
from aisopod.config.sections.tools import ToolsSection
from aisopod.config.sections.usage import UsageSection

REDACTED = "__AISOPOD_REDACTED__"


class GatewayConfig(Section):
    gateway: GatewaySection = Field(default_factory=GatewaySection)
    auth: AuthSection = Field(default_factory=AuthSection)
    cors: CorsSection = Field(default_factory=CorsSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    models: ProvidersSection = Field(default_factory=ProvidersSection)
    hooks: HooksSection = Field(default_factory=HooksSection)
    tools: ToolsSection = Field(default_factory=ToolsSection)
    cron: CronSection = Field(default_factory=CronSection)
    heartbeat: HeartbeatSection = Field(default_factory=HeartbeatSection)
    ui: UiSection = Field(default_factory=UiSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    updates: UpdatesSection = Field(default_factory=UpdatesSection)
    usage: UsageSection = Field(default_factory=UsageSection)
    skills: SkillsSection = Field(default_factory=SkillsSection)

    def document(self) -> dict[str, Any]:
        """The full JSON document, secrets in clear (for storage only)."""
        document: dict[str, Any] = _reveal(self.model_dump(by_alias=True, mode="python"))
        return document

    def redacted(self) -> dict[str, Any]:
        """The JSON document with every secret replaced by the REDACTED placeholder."""
        document: dict[str, Any] = _redact(self.model_dump(by_alias=True, mode="python"))
        return document

    def hash(self) -> str:
        return config_hash(self.document())


def config_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(codec.canonical(document)).hexdigest()


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def _redact(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def restore_redacted(new: Any, old: Any) -> Any:
    """Put stored secrets back where a client sent the REDACTED placeholder.

    Lists are matched by position, and by `id`/`name` when items carry one, so reordering
    providers keeps each one's key.
    """
    if new == REDACTED:
        return old
    if isinstance(new, dict):
        old_dict = old if isinstance(old, dict) else {}
        return {k: restore_redacted(v, old_dict.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        keyed = {
            _item_key(item): item for item in old_list if isinstance(item, dict) and _item_key(item)
        }
        out = []
        for index, item in enumerate(new):
            key = _item_key(item) if isinstance(item, dict) else None
            previous = (
                keyed.get(key) if key else (old_list[index] if index < len(old_list) else None)
            )
            out.append(restore_redacted(item, previous))
        return out
    return new


def _item_key(item: dict[str, Any]) -> str | None:
    for field in ("id", "name"):
        if isinstance(item.get(field), str):
            return f"{field}:{item[field]}"
    return None
