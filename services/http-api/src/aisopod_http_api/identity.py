"""Who is calling: the caller the edge layer verified with auth over NATS (gate.py).

No identity is read from HTTP headers: `EdgeMiddleware` checks the edge proof, asks auth
who the bearer is and leaves the answer in `scope["aisopod.caller"]`; routes read it
from there. No caller → 401 (`WWW-Authenticate: Bearer`); a caller without the route's
scope (docs/protocol/http.md: R or W) → 403.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request

from aisopod.errors import Forbidden, Unauthenticated
from aisopod.principal import Principal
from aisopod.scopes import Requirement, Role, allows

CALLER_KEY = "aisopod.caller"
_P = TypeVar("_P", "Caller", Principal)


@dataclass(slots=True)
class Caller:
    """The verified caller: enough to check a scope without building the Principal model
    (the proxy fast path never needs one)."""

    id: str
    role: Role
    scopes: tuple[str, ...]
    auth_method: str
    device_id: str | None
    client_ip: str | None
    trace_id: str | None

    def may(self, requirement: Requirement) -> bool:
        return allows(self.role, self.scopes, requirement)

    def principal(self) -> Principal:
        # Built without re-validation: every field is a plain string taken apart here.
        return Principal.model_construct(
            id=self.id,
            role=self.role,
            scopes=self.scopes,
            auth_method=self.auth_method,
            device_id=self.device_id,
            client_ip=self.client_ip,
            trace_id=self.trace_id,
            conn_id=None,
            node_id=None,
        )


def caller_of(scope: MutableMapping[str, Any]) -> Caller | None:
    """The caller of a request (its ASGI scope), or None when none was verified."""
    caller: Caller | None = scope.get(CALLER_KEY)
    return caller


def authorize(principal: _P | None, requirement: Requirement) -> _P:
    """The caller if it meets `requirement`; else Unauthenticated or Forbidden."""
    if principal is None:
        raise Unauthenticated("missing or invalid credentials: send Authorization: Bearer")
    if not principal.may(requirement):
        raise Forbidden(f"this needs {requirement.value}", code="MISSING_SCOPE")
    return principal


def requires(requirement: Requirement) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller, checked against `requirement`."""

    def dependency(request: Request) -> Principal:
        caller = caller_of(request.scope)
        return authorize(caller.principal() if caller is not None else None, requirement)

    return dependency
