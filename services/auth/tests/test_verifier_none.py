"""`none` mode in the verifier: anonymous where permitted, refused (fail closed) where the
live config switched it on over a public bind. No stores are touched in this mode."""

from __future__ import annotations

import pytest

from aisopod.config.model import GatewayConfig
from aisopod.errors import Forbidden, Unauthenticated
from aisopod_auth.verifier import Attempt, Verifier

NONE = GatewayConfig.model_validate({"auth": {"mode": "none"}})
NONE_FORCED = GatewayConfig.model_validate({"auth": {"mode": "none", "allowInsecureNoAuth": True}})


def verifier(permitted: bool, config: GatewayConfig = NONE) -> Verifier:
    return Verifier(
        config=lambda: config,
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


async def test_a_client_off_this_machine_is_refused_unless_forced() -> None:
    """A loopback bind reached through a tunnel or a local proxy: the client's address
    decides, not the bind's."""
    remote = Attempt(credential=None, client_ip="192.0.2.7")
    with pytest.raises(Unauthenticated) as err:
        await verifier(True).verify(remote)
    assert err.value.detail_code == "AUTH_MODE_REFUSED"
    forced = await verifier(True, NONE_FORCED).verify(remote)
    assert forced.principal.id == "anonymous"


async def test_unknown_role_refused_in_every_mode() -> None:
    with pytest.raises(Forbidden):
        await verifier(True).verify(Attempt(credential=None, client_ip="::1", role="admin"))
