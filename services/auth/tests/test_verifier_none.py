"""`none` mode in the verifier: anonymous where permitted, refused (fail closed) where the
live config switched it on over a public bind. No stores are touched in this mode."""

from __future__ import annotations

import pytest

from aisopod.config.model import GatewayConfig
from aisopod.errors import Forbidden, Unauthenticated
from aisopod_auth.verifier import Attempt, Verifier

NONE = GatewayConfig.model_validate({"auth": {"mode": "none"}})


def verifier(permitted: bool) -> Verifier:
    return Verifier(
        config=lambda: NONE,
        tokens=None,  # type: ignore[arg-type]
        devices=None,  # type: ignore[arg-type]
        nodes=None,  # type: ignore[arg-type]
        lockout=None,  # type: ignore[arg-type]
        notifier=None,  # type: ignore[arg-type]
        none_permitted=lambda auth: permitted,
    )


async def test_anonymous_where_permitted() -> None:
    attempt = Attempt(
        credential=("token", "ignored"), client_ip="127.0.0.1", scopes=["operator.read"]
    )
    result = await verifier(True).verify(attempt)
    assert result.principal.id == "anonymous"
    assert result.principal.auth_method == "none"
    assert result.principal.scopes == ["operator.read"]
    node = await verifier(True).verify(Attempt(credential=None, client_ip="::1", role="node"))
    assert node.principal.role == "node" and node.principal.scopes == []


async def test_refused_on_a_public_bind() -> None:
    with pytest.raises(Unauthenticated) as err:
        await verifier(False).verify(Attempt(credential=None, client_ip="192.0.2.1"))
    assert err.value.detail_code == "AUTH_MODE_REFUSED"


async def test_unknown_role_refused_in_every_mode() -> None:
    with pytest.raises(Forbidden):
        await verifier(True).verify(Attempt(credential=None, client_ip="::1", role="admin"))
