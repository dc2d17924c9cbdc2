"""The configuration model: defaults, hash, redaction and restoring redacted secrets."""

from __future__ import annotations

import pytest

from aisopod import codec
from aisopod.config import REDACTED, GatewayConfig, restore_redacted
from aisopod.config.model import config_hash
from aisopod.config.sections.base import field_title
from aisopod.config.store import parse_document, snapshot_from
from aisopod.errors import InvalidParams


def _with_keys() -> GatewayConfig:
    return GatewayConfig.model_validate(
        {
            "models": {
                "providers": [
                    {"id": "a", "kind": "openai", "baseUrl": "http://x/v1", "apiKey": "sk-a"},
                    {
                        "id": "b",
                        "kind": "openai",
                        "baseUrl": "http://y/v1",
                        "apiKey": "sk-b",
                        "headers": {"X-Api-Key": "hdr-secret"},
                    },
                ]
            },
            "hooks": {"enabled": True, "token": "hook-secret"},
        }
    )


def test_defaults_are_safe() -> None:
    config = GatewayConfig()
    assert config.auth.mode == "token"
    assert config.auth.allow_insecure_no_auth is False
    assert config.hooks.enabled is False
    assert [r.name for r in config.limits.rules if r.lockout_s] == [
        "auth_failures",
        "hook_failures",
    ]


def test_hash_changes_with_a_secret_and_redaction_hides_it() -> None:
    config = _with_keys()
    redacted = config.redacted()
    assert "sk-a" not in str(redacted) and "hook-secret" not in str(redacted)
    assert "hdr-secret" not in str(redacted)
    assert redacted["models"]["providers"][1]["headers"] == {"X-Api-Key": REDACTED}
    assert redacted["hooks"]["token"] == REDACTED
    other = _with_keys()
    other.hooks.token = None
    assert other.hash() != config.hash()
    assert config.hash() == _with_keys().hash()


def test_redacted_placeholders_keep_stored_secrets_even_when_reordered() -> None:
    stored = _with_keys().document()
    sent = _with_keys().redacted()
    sent["models"]["providers"].reverse()
    restored = parse_document(restore_redacted(sent, stored))
    keys = {p.id: p.api_key.get_secret_value() for p in restored.models.providers}
    assert keys == {"a": "sk-a", "b": "sk-b"}
    (b,) = [p for p in restored.models.providers if p.id == "b"]
    assert {k: v.get_secret_value() for k, v in b.headers.items()} == {"X-Api-Key": "hdr-secret"}
    assert restored.hooks.token.get_secret_value() == "hook-secret"


def test_invalid_document_is_invalid_params_with_the_path() -> None:
    with pytest.raises(InvalidParams) as info:
        parse_document({"auth": {"mode": "sometimes"}})
    assert info.value.data["errors"][0]["loc"] == ["auth", "mode"]
    with pytest.raises(InvalidParams):
        parse_document({"unknownSection": {}})


def test_schema_titles_read_as_words_with_units() -> None:
    assert field_title("max_age_s") == "Max age (s)"
    assert field_title("timeout_ms") == "Timeout (ms)"
    assert field_title("allowed_origins") == "Allowed origins"
    assert field_title("s") == "S"
    schema = GatewayConfig.model_json_schema(by_alias=True)
    cors = schema["$defs"]["CorsSection"]["properties"]
    assert cors["maxAgeS"]["title"] == "Max age (s)"


def _priced(cost: dict) -> dict:
    model = {"id": "m", "cost": cost}
    provider = {"id": "p", "kind": "openai", "baseUrl": "http://x/v1", "models": [model]}
    return {"models": {"providers": [provider]}}


def test_model_prices_and_budgets_are_validated() -> None:
    config = parse_document(
        {
            **_priced({"input": 0.15, "output": 0.6, "cacheRead": 0.075}),
            "usage": {
                "budgets": {
                    "agents": {"main": {"monthlyCostUsd": 20}},
                    "tokens": {"tok_0123abcd": {"monthlyTokens": 1000, "monthlyCostUsd": 1.5}},
                }
            },
        }
    )
    price = config.models.providers[0].models[0].cost
    assert price is not None and price.cache_read == 0.075 and price.cache_write is None
    assert config.usage.budgets.tokens["tok_0123abcd"].monthly_tokens == 1000
    assert GatewayConfig().usage.budgets.agents == {}
    bad = [
        _priced({"input": -1, "output": 1}),  # negative
        _priced({"input": float("inf"), "output": 1}),  # not finite
        _priced({"input": 1}),  # output missing
        _priced({"input": 1, "output": 1, "cached": 1}),  # unknown key
        {"usage": {"budgets": {"agents": {"main": {}}}}},  # no limit at all
        {"usage": {"budgets": {"agents": {"main": {"monthlyTokens": 0}}}}},
        {"usage": {"budgets": {"agents": {"main": {"monthlyCostUsd": 0}}}}},
        {"usage": {"budgets": {"agents": {"no spaces": {"monthlyTokens": 5}}}}},
        {"usage": {"budgets": {"tokens": {"token:tok_1": {"monthlyTokens": 5}}}}},
    ]
    for document in bad:
        with pytest.raises(InvalidParams):
            parse_document(document)


def test_provider_key_and_headers_must_fit_in_http_headers() -> None:
    """They are sent as header values: a pasted `sk-…` placeholder made the provider fail to
    build and the runtime crash at every start; the write is refused instead, naming the
    field and not the secret."""

    def provider(**fields: object) -> dict:
        entry = {"id": "p", "kind": "openai", "baseUrl": "http://x/v1", **fields}
        return {"models": {"providers": [entry]}}

    parse_document(provider(apiKey="sk-abc_DEF.123", headers={"X-Title": "my app\tv2"}))
    bad = [
        (provider(apiKey="sk-…"), ["models", "providers", "0", "apiKey"]),
        (provider(apiKey="sk-abc\r\nX-Evil: 1"), ["models", "providers", "0", "apiKey"]),
        (provider(headers={"X-Title": "caf\u00e9"}), ["models", "providers", "0", "headers"]),
        (provider(headers={"X Title": "ok"}), ["models", "providers", "0", "headers"]),
    ]
    for document, loc in bad:
        with pytest.raises(InvalidParams) as info:
            parse_document(document)
        assert info.value.data["errors"][0]["loc"] == loc
        assert "…" not in str(info.value.data) and "caf\u00e9" not in str(info.value.data)


def test_a_stored_document_that_fails_validation_is_salvaged_not_fatal() -> None:
    document = {
        "ui": {"title": "kept"},
        "cors": {"allowedOrigins": 7},
        "models": {
            "providers": [
                {"id": "echo", "kind": "echo"},
                {"id": "openai", "baseUrl": "http://127.0.0.1:9/v1", "apiKey": "sk-\u2026"},
            ]
        },
    }
    snapshot = snapshot_from(codec.canonical(document), 4)
    assert snapshot.config.ui.title == "kept"
    assert [p.id for p in snapshot.config.models.providers] == ["echo"]
    assert snapshot.config.cors == GatewayConfig().cors  # the failing section: its defaults
    assert snapshot.stored == document and snapshot.revision == 4
    assert snapshot.hash == config_hash(document)
    assert "apiKey must be printable ASCII" in snapshot.unusable_providers["openai"]
    assert any(p.startswith("cors.") for p in snapshot.problems)
    garbage = snapshot_from(b"not json", 5)
    assert garbage.config == GatewayConfig() and garbage.problems
    valid = snapshot_from(codec.canonical({"ui": {"title": "ok"}}), 6)
    assert valid.stored is None and valid.problems == ()
