"""Pure pieces of the shared library: errors, scopes, principal, subjects, client IP."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ValidationError

from aisopod import rpc
from aisopod.clientip import client_ip, is_loopback
from aisopod.errors import (
    AisopodError,
    Forbidden,
    InternalError,
    RateLimited,
    Unavailable,
    invalid_params_from_validation,
)
from aisopod.principal import Principal
from aisopod.scopes import Requirement, Role, allows, effective_scopes, grant
from aisopod.subjects import Subjects, subject_token


def test_error_round_trips_through_the_wire_with_its_class_and_data() -> None:
    error = Forbidden(
        "missing scope: operator.write", code="MISSING_SCOPE", requiredScope="operator.write"
    )
    wire = error.to_wire()
    assert wire == {
        "code": -32003,
        "message": "missing scope: operator.write",
        "data": {"code": "MISSING_SCOPE", "requiredScope": "operator.write"},
    }
    back = AisopodError.from_wire(wire)
    assert isinstance(back, Forbidden)
    assert back.detail_code == "MISSING_SCOPE"
    assert back.http_status == 403


def test_unknown_wire_code_becomes_internal_and_unavailable_is_retryable() -> None:
    assert isinstance(AisopodError.from_wire({"code": 12345, "message": "x"}), InternalError)
    assert Unavailable("owner down").data["retryable"] is True
    assert RateLimited(retryAfterMs=2500).retry_after_ms == 2500


def test_invalid_params_names_the_field() -> None:
    error = invalid_params_from_validation(
        [{"loc": ("sessionKey",), "msg": "Field required", "type": "missing"}]
    )
    assert "sessionKey" in error.message
    assert error.data["errors"][0]["loc"] == ["sessionKey"]


@pytest.mark.parametrize(
    ("role", "scopes", "requirement", "allowed"),
    [
        ("operator", ["operator.admin"], Requirement.PAIRING, True),
        ("operator", ["operator.write"], Requirement.READ, True),
        ("operator", ["operator.read"], Requirement.WRITE, False),
        ("operator", [], Requirement.READ, False),
        ("operator", [], Requirement.ANY, True),
        ("operator", ["operator.admin"], Requirement.NODE, False),
        ("node", [], Requirement.NODE, True),
        ("node", ["operator.admin"], Requirement.READ, False),
        ("operator", ["operator.bogus"], Requirement.READ, False),
    ],
)
def test_allows(role: str, scopes: list[str], requirement: Requirement, allowed: bool) -> None:
    assert allows(role, scopes, requirement) is allowed


def test_grant_cuts_requested_scopes_to_what_the_credential_allows() -> None:
    assert grant(["operator.read", "operator.admin"], ["operator.write"]) == ["operator.read"]
    assert grant([], ["operator.admin"]) == []
    assert "operator.pairing" in effective_scopes(["operator.admin"])


def test_principal_round_trips_through_nats_headers() -> None:
    principal = Principal(
        id="device:abc",
        role=Role.OPERATOR,
        scopes=("operator.read", "operator.write"),
        auth_method="device_token",
        conn_id="c1",
        client_ip="10.0.0.1",
        device_id="abc",
    )
    back = Principal.from_headers(principal.to_headers())
    assert back == principal
    assert Principal.from_headers({}) is None
    # The RPC wrapper remembers principals by their headers: every identity header counts.
    assert rpc._principal(principal.to_headers()) == principal
    assert rpc._principal(principal.to_headers()) is rpc._principal(principal.to_headers())
    for changed in (
        principal.model_copy(update={"conn_id": "c2"}),
        principal.model_copy(update={"scopes": ("operator.read",)}),
        principal.model_copy(update={"trace_id": "t1"}),
    ):
        assert rpc._principal(changed.to_headers()) == changed
    assert rpc._principal({}) is None


def test_subject_tokens_are_safe_and_distinct() -> None:
    subjects = Subjects("aisopod")
    assert subjects.rpc("chat.send") == "aisopod.rpc.chat.send"
    assert subjects.rpc_method("aisopod.rpc.chat.send") == "chat.send"
    assert subject_token("agent:main:work") == "agent:main:work"
    assert "." not in subject_token("a.b*c>d e")
    assert subject_token("a.b") != subject_token("a%2Eb") != subject_token("a_b")


TRUSTED = ["127.0.0.1/32", "10.0.0.0/8"]


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1", "1.2.3.4"),  # right-most untrusted hop
        ("127.0.0.1", "10.0.0.5", "10.0.0.5"),  # all trusted: left-most
        ("127.0.0.1", None, "127.0.0.1"),
        ("::ffff:127.0.0.1", "1.2.3.4", "1.2.3.4"),
        ("127.0.0.1", "garbage, 1.2.3.4:5678", "1.2.3.4"),
    ],
)
def test_client_ip(peer: str, xff: str | None, expected: str) -> None:
    assert client_ip(peer, xff, TRUSTED) == expected


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("10.0.0.1")


def test_invalid_params_names_the_branch_that_matched_not_the_first_tried() -> None:
    class Item(BaseModel):
        role: Literal["user", "assistant"]

    class Body(BaseModel):
        input: str | list[Item]

    payload = {"input": [{"role": "usr"}]}
    with pytest.raises(ValidationError) as failed:
        Body.model_validate(payload)
    error = invalid_params_from_validation(failed.value.errors(), payload)
    assert error.message.startswith("invalid params: input.0.role: Input should be 'user'")
    assert error.data["loc"] == ["input", "0", "role"]
    assert len(error.data["errors"]) == 2  # every branch's error is still listed

    with pytest.raises(ValidationError) as failed:
        Body.model_validate({"input": 5})
    error = invalid_params_from_validation(failed.value.errors(), {"input": 5})
    assert error.message == (
        "invalid params: input: Input should be a valid string or Input should be a valid list"
    )
