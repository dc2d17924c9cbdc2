"""The rules of the auth modes, as data and small pure functions (no I/O).

| credential \\ mode        | token | password | device_token       | none |
|--------------------------|-------|----------|--------------------|------|
| admin bootstrap token    | yes   | yes      | direct loopback    | -    |
| API token (`token create`)| yes  | no       | no                 | -    |
| shared password          | no    | yes      | no                 | -    |
| paired device's token    | yes   | yes      | yes                | -    |
| paired node's token      | yes   | yes      | yes                | -    |

In `none` every client is the anonymous operator; `none` is refused on a non-loopback bind
unless `allowInsecureNoAuth` is set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aisopod.scopes import ALL_SCOPES, Role, grant
from aisopod_auth.records import CredentialKind

K = CredentialKind

ACCEPTED: dict[str, frozenset[CredentialKind]] = {
    "token": frozenset({K.ADMIN, K.API, K.DEVICE, K.NODE}),
    "password": frozenset({K.ADMIN, K.PASSWORD, K.DEVICE, K.NODE}),
    "device_token": frozenset({K.DEVICE, K.NODE}),
    "none": frozenset(K),
}

# `auth_method` of the principal, per credential.
AUTH_METHOD: dict[CredentialKind, str] = {
    K.ADMIN: "token",
    K.API: "token",
    K.PASSWORD: "password",
    K.DEVICE: "device_token",
    K.NODE: "node_token",
}

ALL_OPERATOR_SCOPES: tuple[str, ...] = tuple(sorted(ALL_SCOPES))


def accepts(mode: str, kind: CredentialKind, *, direct_loopback: bool) -> bool:
    """Whether `mode` accepts a valid credential of `kind` from this connection."""
    if mode == "device_token" and kind is K.ADMIN:
        # The bootstrap token stays usable to rescue a device-only gateway, but only from
        # the machine itself, never through an untrusted hop.
        return direct_loopback
    return kind in ACCEPTED.get(mode, frozenset())


def roles_for(kind: CredentialKind, own_role: str | None) -> frozenset[str]:
    """Roles a credential may connect as: shared secrets any, tokens their own role."""
    if kind in (K.ADMIN, K.PASSWORD):
        return frozenset(Role)
    if kind is K.NODE:
        return frozenset({Role.NODE.value})
    return frozenset({own_role or Role.OPERATOR.value})


def granted_scopes(role: str, requested: list[str] | None, allowed: Iterable[str]) -> list[str]:
    """Scopes the connection gets: nodes none; operators what they asked for, cut down to
    what the credential allows (default deny); `requested` None (HTTP) means all allowed."""
    if role != Role.OPERATOR:
        return []
    allowed = list(allowed)
    if requested is None:
        return sorted(set(allowed) & ALL_SCOPES)
    return grant(requested, allowed)


def is_loopback_host(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def none_mode_permitted(bind_hosts: Iterable[str], allow_insecure: bool) -> bool:
    """`none` only where nobody but this machine can reach the gateway, unless forced."""
    return allow_insecure or all(is_loopback_host(h) for h in bind_hosts if h)
