"""Model providers and the agents' defaults (runtime)."""

from typing import Literal

from pydantic import Field, SecretStr

from aisopod.config.sections.base import Section


class ModelEntry(Section):
    id: str
    context_window: int | None = None


class ProviderConfig(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["openai", "echo"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)


def _default_providers() -> list[ProviderConfig]:
    return [ProviderConfig(id="echo", kind="echo", models=[ModelEntry(id="echo")])]


class AgentDefaults(Section):
    default_id: str = "main"
    model: str = "echo/echo"
    instructions: str = "You are a helpful assistant."
    timeout_ms: int = Field(600_000, ge=1_000)


class ProvidersSection(Section):
    providers: list[ProviderConfig] = Field(default_factory=_default_providers)
    agents: AgentDefaults = Field(default_factory=AgentDefaults)
