"""The lean `cors` reader (aisopod/origins.py) against the config model it stands in for."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from aisopod.config.model import GatewayConfig
from aisopod.origins import read_cors

VALID: list[Any] = [
    {},
    {"cors": {}},
    {"cors": {"allowedOrigins": ["https://App.example/", "https://app.example", "*"]}},
    {"cors": {"allowed_origins": ["http://[::1]:8080"], "max_age_s": 0}},
    {"cors": {"maxAgeS": 86_400}},
    {"auth": {"mode": "token"}, "cors": {"allowedOrigins": ["http://a.example:80"]}},
]
INVALID: list[Any] = [
    {"cors": {"allowedOrigins": ["ftp://a.example"]}},
    {"cors": {"allowedOrigins": ["https://a.example/path"]}},
    {"cors": {"allowedOrigins": "https://a.example"}},
    {"cors": {"maxAgeS": -1}},
    {"cors": {"maxAgeS": 86_401}},
    {"cors": {"maxAgeS": "soon"}},
    {"cors": {"unknown": 1}},
    {"cors": []},
]


@pytest.mark.parametrize("document", VALID)
def test_read_cors_agrees_with_the_model(document: Any) -> None:
    config = GatewayConfig.model_validate(document)
    assert read_cors(document) == (list(config.cors.allowed_origins), config.cors.max_age_s)


@pytest.mark.parametrize("document", INVALID)
def test_read_cors_refuses_what_the_model_refuses(document: Any) -> None:
    with pytest.raises(ValidationError):
        GatewayConfig.model_validate(document)
    with pytest.raises(ValueError):
        read_cors(document)


def test_read_cors_of_a_stored_document() -> None:
    config = GatewayConfig.model_validate({"cors": {"allowedOrigins": ["https://B.example"]}})
    assert read_cors(config.document()) == (["https://b.example"], 600)
