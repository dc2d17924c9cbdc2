"""Model providers and the agents' defaults (runtime).

Model references everywhere (agents, sessions, defaults) are `<providerId>/<modelId>`; the
model id may itself contain slashes (`openrouter/meta-llama/llama-3-8b`): only the first
one separates the provider.
"""

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from aisopod.config.sections.base import Section


class ModelCost(Section):
    """Prices in USD per million tokens. `input` is charged for the prompt tokens that
    were neither read from nor written to the provider's prompt cache; those cost
    `cacheRead` and `cacheWrite` (each defaults to `input` when not given)."""

    input: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)
    output: float = Field(ge=0, le=1_000_000, allow_inf_nan=False)
    cache_read: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)
    cache_write: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)


class ModelEntry(Section):
    id: str = Field(min_length=1, max_length=200)
    context_window: int | None = Field(None, ge=1)
    cost: ModelCost | None = Field(None, description="USD per million tokens (usage.cost)")


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")


class ProviderConfig(Section):
    """One upstream. `openai`: any OpenAI-compatible Chat Completions server (OpenAI,
    Ollama, vLLM, llama.cpp, LM Studio, OpenRouter); `echo`: the built-in offline model."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["openai", "echo"] = "openai"
    base_url: str | None = Field(None, description="e.g. https://api.openai.com/v1")
    api_key: SecretStr | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    # Secrets like api_key: a header is where some upstreams take their key (api-key,
    # X-Api-Key, a gateway's bearer), so every value is redacted on read, kept on write.
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="extra request headers (e.g. OpenRouter's X-Title); values are redacted",
    )
    timeout_s: float = Field(60.0, gt=0, description="connect, and between two stream chunks")
    max_retries: int = Field(2, ge=0, le=10, description="on 429/5xx before the first byte")
    discover_models: bool = Field(True, description="merge the upstream's /models list")
    chunk_delay_ms: int = Field(
        120,
        ge=0,
        le=5_000,
        description="echo only: the pause between the answer's chunks (at most four), so "
        "a fresh install shows streaming; 0 answers at once",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("baseUrl must be an http(s) URL")
        return value.rstrip("/") if value else value

    # The key and the headers go out as HTTP header values, which the HTTP client encodes as
    # ASCII: a pasted placeholder (`sk-…`) or a line break would make the provider fail to
    # build, and the runtime with it, so such a document is refused when it is written.
    @field_validator("api_key")
    @classmethod
    def _key_fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _HEADER_VALUE.fullmatch(value.get_secret_value()):
            raise ValueError("apiKey must be printable ASCII (it is sent in a header)")
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if not _HEADER_VALUE.fullmatch(secret.get_secret_value()):
                raise ValueError(f"the value of header {name!r} must be printable ASCII")
        return value


def _default_providers() -> list[ProviderConfig]:
    return [ProviderConfig(id="echo", kind="echo", models=[ModelEntry(id="echo")])]


class CompactionSettings(Section):
    """Summarising a session's old turns (docs/runtime.md, Compaction)."""

    auto: bool = Field(True, description="compact before a turn that nears the context window")
    threshold: float = Field(
        0.8,
        ge=0.1,
        le=0.95,
        description="compact when the estimated request exceeds this share of the model's "
        "contextWindow (models without one are never compacted automatically)",
    )
    keep_turns: int = Field(2, ge=0, le=100, description="newest turns kept as they are")
    timeout_ms: int = Field(
        120_000, ge=1_000, le=600_000, description="the summary call's time limit"
    )


class AgentDefaults(Section):
    default_id: str = "main"
    model: str = Field("echo/echo", pattern=r"^[^/\s]+/\S+$")
    instructions: str = "You are a helpful assistant."
    timeout_ms: int = Field(600_000, ge=1_000)
    max_tool_steps: int = Field(8, ge=1, le=64, description="model calls per run")
    history_limit: int = Field(200, ge=1, le=10_000, description="messages sent as context")
    compaction: CompactionSettings = Field(default_factory=CompactionSettings)


class ProvidersSection(Section):
    providers: list[ProviderConfig] = Field(default_factory=_default_providers)
    agents: AgentDefaults = Field(default_factory=AgentDefaults)
    models_cache_s: float = Field(300.0, ge=0, description="how long /models lists are kept")

    @field_validator("providers")
    @classmethod
    def _unique_ids(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        ids = [p.id for p in value]
        if len(ids) != len(set(ids)):
            raise ValueError("provider ids must be unique")
        return value
