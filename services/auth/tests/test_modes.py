"""The mode table, roles per credential, granted scopes, and where `none` may run."""

from __future__ import annotations

import pytest

from aisopod_auth.modes import (
    ALL_OPERATOR_SCOPES,
    accepts,
    granted_scopes,
    is_loopback_host,
    none_mode_permitted,
    roles_for,
)
from aisopod_auth.records import CredentialKind as K

TABLE = {
    "token": {K.ADMIN, K.API, K.DEVICE, K.NODE},
    "password": {K.ADMIN, K.PASSWORD, K.DEVICE, K.NODE},
    "device_token": {K.DEVICE, K.NODE},
}


@pytest.mark.parametrize("mode", sorted(TABLE))
@pytest.mark.parametrize("kind", list(K))
def test_mode_table_remote(mode: str, kind: K) -> None:
    assert accepts(mode, kind, direct_loopback=False) is (kind in TABLE[mode])


def test_device_token_mode_lets_the_admin_in_only_over_direct_loopback() -> None:
    assert accepts("device_token", K.ADMIN, direct_loopback=True)
    assert not accepts("device_token", K.ADMIN, direct_loopback=False)
    assert not accepts("device_token", K.API, direct_loopback=True)
    assert not accepts("device_token", K.PASSWORD, direct_loopback=True)


def test_unknown_mode_accepts_nothing() -> None:
    assert not any(accepts("kerberos", kind, direct_loopback=True) for kind in K)


def test_roles_per_credential() -> None:
    assert roles_for(K.ADMIN, None) == {"operator", "node"}
    assert roles_for(K.PASSWORD, None) == {"operator", "node"}
    assert roles_for(K.NODE, None) == {"node"}
    assert roles_for(K.API, "operator") == {"operator"}
    assert roles_for(K.DEVICE, "node") == {"node"}


def test_granted_scopes_default_deny_and_cut_down() -> None:
    assert granted_scopes("operator", [], ALL_OPERATOR_SCOPES) == []
    assert granted_scopes("operator", ["operator.read", "x.y"], ["operator.write"]) == [
        "operator.read"
    ]
    assert granted_scopes("operator", ["operator.admin"], ["operator.read"]) == []
    assert granted_scopes("node", ["operator.read"], ALL_OPERATOR_SCOPES) == []
    # HTTP asks for nothing in particular: everything the credential holds.
    assert granted_scopes("operator", None, ["operator.read", "junk"]) == ["operator.read"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("gateway.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_none_mode_only_on_loopback_unless_forced() -> None:
    assert none_mode_permitted(["127.0.0.1", "localhost"], allow_insecure=False)
    assert not none_mode_permitted(["0.0.0.0"], allow_insecure=False)
    assert not none_mode_permitted(["127.0.0.1", "192.0.2.1"], allow_insecure=False)
    assert none_mode_permitted(["0.0.0.0"], allow_insecure=True)
