"""The forwardAuth reply shapes, without a server: pure functions of the module."""

from __future__ import annotations

import json

from aisopod.contracts.auth import VerifiedPrincipal, VerifyResult
from aisopod.errors import Forbidden, RateLimited, Unauthenticated
from aisopod.principal import IDENTITY_HEADERS
from aisopod_auth.forward_auth import bearer_of, error_response, identity_headers, is_openai_uri


def test_bearer_parsing() -> None:
    assert bearer_of("Bearer abc") == "abc"
    assert bearer_of("bearer   abc  ") == "abc"
    assert bearer_of("Basic abc") is None
    assert bearer_of("Bearer") is None
    assert bearer_of("Bearer   ") is None
    assert bearer_of(None) is None


def test_openai_uris() -> None:
    assert is_openai_uri("/v1/chat/completions")
    assert is_openai_uri("/v1")
    assert is_openai_uri("/v1/models?limit=1")
    assert not is_openai_uri("/v10/x")
    assert not is_openai_uri("/status")
    assert not is_openai_uri("")


def test_identity_headers_are_exactly_the_routed_ones() -> None:
    principal = VerifiedPrincipal(
        id="device:ab",
        role="operator",
        scopes=["operator.read"],
        auth_method="device_token",
        device_id="ab",
    )
    headers = identity_headers(VerifyResult(principal=principal), "192.0.2.4")
    assert set(IDENTITY_HEADERS) <= set(headers)
    assert headers["X-Aisopod-Scopes"] == "operator.read"
    assert headers["X-Aisopod-Client-Ip"] == "192.0.2.4"
    anonymous = VerifiedPrincipal(id="anonymous", role="operator", scopes=[], auth_method="none")
    assert "X-Aisopod-Device-Id" not in identity_headers(VerifyResult(principal=anonymous), "::1")


def test_401_shapes() -> None:
    exc = Unauthenticated("invalid token", code="AUTH_TOKEN_MISMATCH")
    plain = error_response(exc, openai=False)
    assert plain.status_code == 401
    assert plain.headers["www-authenticate"].startswith("Bearer")
    assert json.loads(plain.body) == {
        "ok": False,
        "error": {
            "type": "unauthenticated",
            "message": "invalid token",
            "code": "AUTH_TOKEN_MISMATCH",
        },
    }
    openai = error_response(exc, openai=True)
    assert json.loads(openai.body) == {
        "error": {
            "message": "invalid token",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }


def test_429_carries_retry_after_in_whole_seconds() -> None:
    exc = RateLimited("locked", code="AUTH_RATE_LIMITED", retryAfterMs=1500)
    response = error_response(exc, openai=True)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert "www-authenticate" not in response.headers
    assert json.loads(response.body)["error"]["type"] == "rate_limit_error"


def test_403_for_a_role_the_credential_lacks() -> None:
    response = error_response(Forbidden("no", code="UNAUTHORIZED_ROLE"), openai=False)
    assert response.status_code == 403
    assert json.loads(response.body)["error"]["code"] == "UNAUTHORIZED_ROLE"
