"""The live providers of the current configuration, rebuilt when `models.providers` changes.

A provider whose settings did not change keeps its connection pool. A replaced one is
retired, not closed at once: runs already streaming from it finish on the old client;
retired clients are closed after `RETIRE_AFTER_S` or at stop.

A provider that cannot be used — its entry failed validation and was left out of the
running configuration, or building its client failed — is unavailable, not fatal: the
others keep working, and its requests get `ProviderUnavailable` saying why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aisopod.config.sections.providers import ProviderConfig, ProvidersSection
from aisopod.errors import InvalidParams
from aisopod_runtime.providers.base import Provider, ProviderError, ProviderUnavailable
from aisopod_runtime.providers.echo import EchoProvider
from aisopod_runtime.providers.openai import OpenAIProvider

log = logging.getLogger("aisopod.runtime.providers")

RETIRE_AFTER_S = 3600.0


def split_model_ref(ref: str) -> tuple[str, str]:
    """`<providerId>/<modelId>` → (provider id, model id); INVALID_PARAMS otherwise."""
    provider_id, sep, model_id = ref.partition("/")
    if not sep or not provider_id or not model_id:
        raise InvalidParams(f"model {ref!r} must be <providerId>/<modelId>", code="BAD_MODEL_REF")
    return provider_id, model_id


def build_provider(config: ProviderConfig) -> Provider:
    if config.kind == "echo":
        return EchoProvider(
            config.id, [m.id for m in config.models] or ["echo"], config.chunk_delay_ms / 1000
        )
    return OpenAIProvider(config)


class ProviderRegistry:
    def __init__(
        self, section: ProvidersSection, unusable: Mapping[str, str] | None = None
    ) -> None:
        self._configs: dict[str, ProviderConfig] = {}
        self._live: dict[str, Provider] = {}
        self._retired: list[tuple[float, Provider]] = []
        self._unusable: dict[str, str] = {}
        self._broken: dict[str, str] = {}
        self.apply(section, unusable)

    @property
    def configs(self) -> dict[str, ProviderConfig]:
        return dict(self._configs)

    @property
    def unavailable(self) -> dict[str, str]:
        """Configured providers that cannot be used, id → why."""
        return {**self._unusable, **self._broken}

    def apply(self, section: ProvidersSection, unusable: Mapping[str, str] | None = None) -> None:
        """Bring the live providers in line with `section` (called on config changes);
        `unusable` names entries of the stored document left out as invalid (id → why)."""
        wanted = {p.id: p for p in section.providers}
        for provider_id in list(self._live):
            if wanted.get(provider_id) != self._configs.get(provider_id):
                self._retire(provider_id)
        for provider_id in list(self._broken):
            if wanted.get(provider_id) != self._configs.get(provider_id):
                del self._broken[provider_id]  # its settings changed: try them
        for provider_id, config in wanted.items():
            if provider_id in self._live or provider_id in self._broken:
                continue
            try:
                self._live[provider_id] = build_provider(config)
            except ProviderError as exc:
                self._broken[provider_id] = exc.message
                log.error("provider %s is unavailable: %s", provider_id, exc.message)
            except Exception as exc:  # whatever the client refuses must not stop the rest
                # The type only: the client's message may quote the key it refused.
                reason = f"its client cannot be built from its settings ({type(exc).__name__})"
                self._broken[provider_id] = reason
                log.error("provider %s is unavailable: %s", provider_id, reason)
        self._configs = wanted
        new_unusable = {k: v for k, v in (unusable or {}).items() if k not in wanted}
        for provider_id, reason in new_unusable.items():
            if self._unusable.get(provider_id) != reason:
                log.error("provider %s is unavailable: %s", provider_id, reason)
        self._unusable = new_unusable

    def get(self, provider_id: str) -> Provider | None:
        return self._live.get(provider_id)

    def resolve(self, model_ref: str) -> tuple[Provider, str]:
        """The provider and its local model id for `<providerId>/<modelId>`; ProviderUnavailable
        for a provider that is configured but cannot be used."""
        provider_id, model_id = split_model_ref(model_ref)
        provider = self._live.get(provider_id)
        if provider is None:
            reason = self._broken.get(provider_id) or self._unusable.get(provider_id)
            if reason is not None:
                raise ProviderUnavailable(provider_id, reason)
            raise ProviderError(
                f"no provider {provider_id!r} is configured (model {model_ref})", kind="config"
            )
        return provider, model_id

    def _retire(self, provider_id: str) -> None:
        provider = self._live.pop(provider_id)
        self._retired.append((time.monotonic(), provider))

    async def close_retired(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        keep = []
        for since, provider in self._retired:
            if everything or now - since > RETIRE_AFTER_S:
                await provider.close()
            else:
                keep.append((since, provider))
        self._retired = keep

    async def close(self) -> None:
        await self.close_retired(everything=True)
        for provider in self._live.values():
            await provider.close()
        self._live.clear()
