"""Roles, operator scopes and the rule that decides whether a principal may call a method.

Pure: no I/O. The catalogue gives every method exactly one `Requirement`; edges check it
before forwarding, owners trust the edge (NATS permissions stop anyone else publishing rpc).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    NODE = "node"


class Scope(StrEnum):
    ADMIN = "operator.admin"
    READ = "operator.read"
    WRITE = "operator.write"
    APPROVALS = "operator.approvals"
    PAIRING = "operator.pairing"


class Requirement(StrEnum):
    """What a method needs: one operator scope, the node role, or just a connection."""

    ADMIN = Scope.ADMIN.value
    READ = Scope.READ.value
    WRITE = Scope.WRITE.value
    APPROVALS = Scope.APPROVALS.value
    PAIRING = Scope.PAIRING.value
    NODE = "role:node"
    ANY = "any"


ALL_SCOPES: frozenset[str] = frozenset(s.value for s in Scope)

# A held scope also grants these (admin grants everything, write grants read).
_IMPLIES: dict[str, frozenset[str]] = {
    Scope.ADMIN: ALL_SCOPES,
    Scope.WRITE: frozenset({Scope.WRITE, Scope.READ}),
}


def effective_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Expand held scopes by implication; unknown scope names are dropped (default deny)."""
    out: set[str] = set()
    for scope in scopes:
        if scope in ALL_SCOPES:
            out |= _IMPLIES.get(scope, frozenset({scope}))
    return frozenset(out)


def allows(role: str, scopes: Iterable[str], requirement: Requirement) -> bool:
    """True when a principal with this role and these scopes satisfies `requirement`."""
    if requirement is Requirement.ANY:
        return True
    if requirement is Requirement.NODE:
        return role == Role.NODE
    if role != Role.OPERATOR:
        return False
    return requirement.value in effective_scopes(scopes)


def grant(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The granted set: what was requested, cut down to what the credential allows.

    Nothing requested, nothing granted. A requested scope is granted when the credential's
    scopes imply it (a credential holding admin may be granted read alone).
    """
    allowed_effective = effective_scopes(allowed)
    return sorted({s for s in requested if s in allowed_effective})
