"""Who is calling: the principal Traefik's forwardAuth (the auth service) put in headers.

http-api trusts `X-Aisopod-*` only because it is reachable through Traefik alone, which
removes any copy a client sends before auth runs (launcher/traefik.py `strip-identity`).
No principal → 401 (`WWW-Authenticate: Bearer`); a principal without the route's scope
(http.md: R or W) → 403.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import Request

from aisopod.errors import Forbidden, Unauthenticated
from aisopod.principal import Principal
from aisopod.scopes import Requirement, Role
from aisopod_http_api.edge import REQUEST_ID_KEY

_H_PRINCIPAL = b"x-aisopod-principal"
_H_ROLE = b"x-aisopod-role"
_H_SCOPES = b"x-aisopod-scopes"
_H_METHOD = b"x-aisopod-auth-method"
_H_DEVICE = b"x-aisopod-device-id"
_H_IP = b"x-aisopod-client-ip"
_WANTED = frozenset({_H_PRINCIPAL, _H_ROLE, _H_SCOPES, _H_METHOD, _H_DEVICE, _H_IP})
_ROLES = {role.value: role for role in Role}


def principal_from_headers(
    headers: Iterable[tuple[bytes, bytes]], trace_id: str | None = None
) -> Principal | None:
    """The principal of a request (raw ASGI headers), or None when auth set none."""
    found: dict[bytes, str] = {}
    for name, value in headers:
        if name in _WANTED:
            found[name] = value.decode("latin-1").strip()
    principal_id = found.get(_H_PRINCIPAL)
    if not principal_id:
        return None
    role = _ROLES.get(found.get(_H_ROLE, ""), Role.OPERATOR)
    scopes = tuple(s for s in found.get(_H_SCOPES, "").replace(" ", ",").split(",") if s)
    # Built without re-validation: every field is a plain string taken apart above, and
    # this runs on every request of the fast path (pydantic's checks cost ~10 µs here).
    return Principal.model_construct(
        id=principal_id,
        role=role,
        scopes=scopes,
        auth_method=found.get(_H_METHOD) or "none",
        device_id=found.get(_H_DEVICE) or None,
        client_ip=found.get(_H_IP) or None,
        trace_id=trace_id,
        conn_id=None,
        node_id=None,
    )


def authorize(principal: Principal | None, requirement: Requirement) -> Principal:
    """The principal if it meets `requirement`; else Unauthenticated or Forbidden."""
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
