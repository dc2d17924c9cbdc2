"""The auth service's own NATS subjects (not catalogue methods):

- `<prefix>.auth.verify`: the ws-gateway handshake and every http-api request
  (`VerifyRequest` → `VerifyResult`).
- `<prefix>.auth.token.create|list|revoke`: operator API tokens (`aisopod token`); the
  request must carry a principal holding operator.admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from aisopod.contracts.auth import (
    CloseConnections,
    TokenCreated,
    TokenCreateRequest,
    TokenInfo,
    TokenList,
    TokenRevokeRequest,
    VerifyRequest,
    VerifyResult,
)
from aisopod.errors import Forbidden, NotFound, Unauthenticated, invalid_params_from_validation
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod.subjects import Subjects
from aisopod_auth.notify import Notifier
from aisopod_auth.records import ApiTokenEntry
from aisopod_auth.tokens import TokenStore
from aisopod_auth.verifier import Attempt, Field, Verifier

M = TypeVar("M", bound=BaseModel)
RawHandler = Callable[[Any, Mapping[str, str]], Awaitable[Any]]


def parse(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload if isinstance(payload, dict) else {})
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


def attempt_of(request: VerifyRequest) -> Attempt:
    """The handshake's credential: the connect frame's `auth` first, then the upgrade's
    bearer (already seen by the edge)."""
    credential: tuple[Field, str] | None = None
    auth = request.auth
    for where, value in (
        ("deviceToken", auth.device_token),
        ("token", auth.token),
        ("password", auth.password),
        ("bearer", request.bearer),
    ):
        if value:
            credential = (where, value)  # type: ignore[assignment]
            break
    return Attempt(
        credential=credential,
        client_ip=request.client_ip,
        role=request.role,
        scopes=list(request.scopes) if request.scopes is not None else None,
        device=request.device,
        nonce=request.nonce,
        client=request.client,
        origin=request.origin,
        direct_loopback=request.direct_loopback,
    )


def _info(entry: ApiTokenEntry) -> TokenInfo:
    return TokenInfo(
        token_id=entry.token_id,
        name=entry.name,
        role=entry.role,
        scopes=entry.scopes,
        created_at=entry.created_at,
    )


def _require_admin(headers: Mapping[str, str]) -> Principal:
    principal = Principal.from_headers(dict(headers))
    if principal is None:
        raise Unauthenticated("request carries no principal")
    if not principal.may(Requirement.ADMIN):
        raise Forbidden("missing scope: operator.admin", code="MISSING_SCOPE")
    return principal


def raw_handlers(
    subjects: Subjects, verifier: Verifier, tokens: TokenStore, notifier: Notifier
) -> dict[str, RawHandler]:
    async def verify(payload: Any, headers: Mapping[str, str]) -> VerifyResult:
        result = await verifier.verify(attempt_of(parse(VerifyRequest, payload)))
        result.generation = notifier.generation  # whoever caches the answer keys it to us
        return result

    async def token_create(payload: Any, headers: Mapping[str, str]) -> TokenCreated:
        _require_admin(headers)
        request = parse(TokenCreateRequest, payload)
        token, entry = await tokens.create_api_token(
            scopes=[s.value for s in request.scopes], role="operator", name=request.name
        )
        return TokenCreated(token=token, **_info(entry).model_dump())

    async def token_list(payload: Any, headers: Mapping[str, str]) -> TokenList:
        _require_admin(headers)
        return TokenList(tokens=[_info(e) for e in await tokens.api_tokens()])

    async def token_revoke(payload: Any, headers: Mapping[str, str]) -> TokenInfo:
        _require_admin(headers)
        request = parse(TokenRevokeRequest, payload)
        entry = await tokens.revoke_api_token(request.token_id)
        if entry is None:
            raise NotFound(f"no API token {request.token_id}")
        await notifier.close(
            CloseConnections(principal_id=f"token:{entry.token_id}", reason="token revoked")
        )
        return _info(entry)

    return {
        subjects.auth("verify"): verify,
        subjects.auth("token.create"): token_create,
        subjects.auth("token.list"): token_list,
        subjects.auth("token.revoke"): token_revoke,
    }
