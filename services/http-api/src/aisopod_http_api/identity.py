"""Who is calling: the principal Traefik's forwardAuth (the auth service) put in headers.

http-api trusts `X-Aisopod-*` only because it is reachable through Traefik alone, which
removes any copy a client sends before auth runs (launcher/traefik.py `strip-identity`).
No principal → 401 (`WWW-Authenticate: Bearer`); a principal without the route's scope
(docs/protocol/http.md: R or W) → 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request

from aisopod.errors import Forbidden, Unauthenticated
from aisopod.principal import Principal
from aisopod.scopes import Requirement, Role, allows
from aisopod_http_api.edge import REQUEST_ID_KEY

_H_PRINCIPAL = b"x-aisopod-principal"
_H_ROLE = b"x-aisopod-role"
_H_SCOPES = b"x-aisopod-scopes"
_H_METHOD = b"x-aisopod-auth-method"
_H_DEVICE = b"x-aisopod-device-id"
_H_IP = b"x-aisopod-client-ip"
_WANTED = frozenset({_H_PRINCIPAL, _H_ROLE, _H_SCOPES, _H_METHOD, _H_DEVICE, _H_IP})
_ROLES = {role.value: role for role in Role}
_P = TypeVar("_P", "Caller", Principal)


@dataclass(slots=True)
class Caller:
    """The identity headers, taken apart: enough to check a scope without building the
    Principal model (the proxy fast path never needs one)."""

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


def caller_from_headers(
    headers: Iterable[tuple[bytes, bytes]], trace_id: str | None = None
) -> Caller | None:
    """The caller of a request (raw ASGI headers), or None when auth set no principal."""
    found: dict[bytes, str] = {}
    for name, value in headers:
        if name in _WANTED:
            found[name] = value.decode("latin-1").strip()
    principal_id = found.get(_H_PRINCIPAL)
    if not principal_id:
        return None
    scopes = tuple(s for s in found.get(_H_SCOPES, "").replace(" ", ",").split(",") if s)
    return Caller(
        id=principal_id,
        role=_ROLES.get(found.get(_H_ROLE, ""), Role.OPERATOR),
        scopes=scopes,
        auth_method=found.get(_H_METHOD) or "none",
        device_id=found.get(_H_DEVICE) or None,
        client_ip=found.get(_H_IP) or None,
        trace_id=trace_id,
    )


def principal_from_headers(
    headers: Iterable[tuple[bytes, bytes]], trace_id: str | None = None
) -> Principal | None:
    caller = caller_from_headers(headers, trace_id)
    return caller.principal() if caller is not None else None


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
        scope = request.scope
        principal = principal_from_headers(scope["headers"], scope.get(REQUEST_ID_KEY))
        return authorize(principal, requirement)

    return dependency
