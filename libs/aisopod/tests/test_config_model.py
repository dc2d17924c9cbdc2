"""The configuration model: defaults, hash, redaction and restoring redacted secrets."""

from __future__ import annotations

import pytest

from aisopod.config import REDACTED, GatewayConfig, restore_redacted
from aisopod.config.sections.base import field_title
from aisopod.config.store import parse_document
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
