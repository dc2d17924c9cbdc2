"""Which provider serves a `model`: the table the proxy fast path resolves ids against.

Built from `models.providers` of the live config and what each provider's upstream last
listed at `/models` (the runtime's stored discoveries), rebuilt when either changes (hot
reload). Only `openai`-kind providers with a `baseUrl` can be proxied (the `echo` provider
lives inside the runtime). A model id is either `<providerId>/<modelId>` (always
unambiguous) or a bare `<modelId>` that exactly one provider lists (configured or
discovered); a bare id that several list is refused with the candidates named. A provider
with no configured models accepts any `<providerId>/<modelId>`.

Each target pre-renders its request head (request line, Host, Authorization, ...) once, so
building a request is two concatenations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aisopod.config.model import GatewayConfig
from aisopod.config.sections.providers import ProviderConfig
from aisopod.errors import InvalidParams, NotFound, Unavailable
from aisopod_http_api.upstream.pool import Origin, parse_base_url

AGENT_PREFIX = "aisopod/"


@dataclass(frozen=True, slots=True)
class ProviderTarget:
    provider_id: str
    model: str  # the id the provider knows
    origin: Origin
    head: bytes  # request line and fixed headers, without Content-Length
    timeout_s: float
    max_retries: int

    @property
    def public_id(self) -> str:
        return f"{self.provider_id}/{self.model}"

    def request(self, body: bytes, request_id: str, traceparent: str | None = None) -> bytes:
        """The whole HTTP/1.1 request; `traceparent` (aisopod.tracing) when tracing."""
        trace = b"traceparent: %s\r\n" % traceparent.encode() if traceparent else b""
        return b"".join(
            (
                self.head,
                b"content-length: %d\r\nx-request-id: %s\r\n%s\r\n"
                % (len(body), request_id.encode(), trace),
                body,
            )
        )


@dataclass(frozen=True, slots=True)
class _Provider:
    config: ProviderConfig
    origin: Origin
    head: bytes
    models: tuple[str, ...]  # configured: none means any id
    discovered: frozenset[str] = frozenset()

    def target(self, model: str) -> ProviderTarget:
        return ProviderTarget(
            provider_id=self.config.id,
            model=model,
            origin=self.origin,
            head=self.head,
            timeout_s=self.config.timeout_s,
            max_retries=self.config.max_retries,
        )


def _head(provider: ProviderConfig, origin: Origin, path: str) -> bytes:
    lines = [
        f"POST {path}/chat/completions HTTP/1.1",
        f"host: {origin.authority}",
        "content-type: application/json",
        "accept: application/json, text/event-stream",
        "user-agent: aisopod-http-api",
    ]
    key = provider.api_key.get_secret_value() if provider.api_key else ""
    if key:
        lines.append(f"authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


@dataclass
class ModelTable:
    providers: dict[str, _Provider] = field(default_factory=dict)
    by_model: dict[str, list[str]] = field(default_factory=dict)  # bare id → provider ids
    resolved: dict[str, ProviderTarget] = field(default_factory=dict)  # ids seen, this config
    # Providers of the stored document left out as invalid (id → why): configured, so their
    # models are refused as unavailable, not as unknown (docs/runtime-ops.md).
    unusable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        discovered: Callable[[ProviderConfig], tuple[str, ...]] = lambda _: (),
        unusable: Mapping[str, str] | None = None,
    ) -> ModelTable:
        table = cls(unusable=dict(unusable or {}))
        for provider in config.models.providers:
            if provider.kind != "openai" or not provider.base_url:
                continue
            try:
                origin, path = parse_base_url(provider.base_url)
            except ValueError:
                continue  # an unusable URL is the runtime's to report; nothing to proxy
            models = tuple(m.id for m in provider.models)
            found = tuple(m for m in discovered(provider) if m not in models)
            table.providers[provider.id] = _Provider(
                provider, origin, _head(provider, origin, path), models, frozenset(found)
            )
            for model in (*models, *found):
                table.by_model.setdefault(model, []).append(provider.id)
        return table

    def resolve(self, model: str) -> ProviderTarget:
        """The target of a non-agent model id, or NotFound / InvalidParams (ambiguous)."""
        target = self.resolved.get(model)
        if target is None:
            target = self._resolve(model)
            if len(self.resolved) < 10_000:  # bounded: open providers accept any id
                self.resolved[model] = target
        return target

    def _resolve(self, model: str) -> ProviderTarget:
        provider_id, sep, rest = model.partition("/")
        if sep and provider_id in self.providers:
            provider = self.providers[provider_id]
            if rest and (
                not provider.models or rest in provider.models or rest in provider.discovered
            ):
                return provider.target(rest)
        if sep and provider_id in self.unusable:
            raise Unavailable(
                f"provider {provider_id!r} is unavailable: {self.unusable[provider_id]}",
                param="model",
                code="PROVIDER_UNAVAILABLE",
                provider=provider_id,
                retryable=False,
            )
        owners = self.by_model.get(model, [])
        if len(owners) == 1:
            return self.providers[owners[0]].target(model)
        if len(owners) > 1:
            choices = ", ".join(f"{p}/{model}" for p in owners)
            raise InvalidParams(
                f"model {model!r} is served by several providers; name one: {choices}",
                param="model",
                openaiCode="model_ambiguous",
            )
        raise NotFound(
            f"the model {model!r} does not exist: use aisopod/<agentId> or a configured "
            "provider model (GET /v1/models)",
            param="model",
            openaiCode="model_not_found",
        )

    def listed(self) -> list[tuple[str, str]]:
        """(public id, provider id) of every configured provider model."""
        return [(f"{pid}/{model}", pid) for pid, p in self.providers.items() for model in p.models]


class ModelTables:
    """The table of the current config and discoveries, rebuilt when the config object or
    the discoveries' version changes."""

    def __init__(
        self,
        current: Callable[[], GatewayConfig],
        discovered: Callable[[ProviderConfig], tuple[str, ...]] = lambda _: (),
        version: Callable[[], Any] = lambda: None,
        unusable: Callable[[], Mapping[str, str]] = lambda: {},
    ) -> None:
        self._current = current
        self._discovered = discovered
        self._version = version
        self._unusable = unusable
        self._built: tuple[GatewayConfig, Any] | None = None
        self._table = ModelTable()

    def get(self) -> ModelTable:
        config, version = self._current(), self._version()
        built = self._built
        if built is None or built[0] is not config or built[1] != version:
            # The left-out providers change with the config object: one snapshot holds both.
            self._table = ModelTable.from_config(config, self._discovered, self._unusable())
            self._built = (config, version)
        return self._table
