"""`/hooks`: webhook ingestion with the hook token (docs/protocol/http.md).

Order of checks, each one before the next: hooks enabled and a token configured (else
404); no token in the query string (400: it would land in access logs); the client IP not
locked out (`ratelimit.status` of rule `hook_failures`, key `ip:<addr>` → 429 with
Retry-After); the token from `Authorization: Bearer` or `x-aisopod-token` (a wrong one is
counted with `ratelimit.fail` → 401, and 20 of them per 60 s lock the IP out); then the body.

Every accepted hook is recorded in KV `hooks` (id, source, time, and what it returned)
under its delivery id (`Idempotency-Key`, `X-GitHub-Delivery`, ... or a fresh one), so a
redelivery returns the first answer and runs nothing again.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from aisopod.catalogue.fields import AgentId, SessionKey
from aisopod.config.sections.hooks import HookMapping
from aisopod.errors import (
    AisopodError,
    InvalidParams,
    NotFound,
    RateLimited,
    Unauthenticated,
    invalid_params_from_validation,
)
from aisopod.principal import Principal
from aisopod.scopes import Role, Scope
from aisopod_http_api.edge import BODY_KEY, CLIENT_IP_KEY
from aisopod_http_api.hookmap import HookRequest, render, select
from aisopod_http_api.openapi import json_body
from aisopod_http_api.routes.completions import parse_json_object
from aisopod_http_api.routes.shapes import PLAIN_ERRORS
from aisopod_http_api.service import HttpApi, api_of

log = logging.getLogger("aisopod.http_api.hooks")

router = APIRouter(tags=["hooks"], responses=PLAIN_ERRORS)

FAILURE_RULE = "hook_failures"
DELIVERY_HEADERS = (
    "idempotency-key",
    "x-github-delivery",
    "x-gitlab-event-uuid",
    "webhook-id",
    "x-delivery-id",
)
_QUERY_TOKENS = frozenset({"token", "access_token", "hook_token", "x-aisopod-token"})

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class WakeBody(BaseModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024, pattern=r"\S")]
    mode: Literal["now", "next-heartbeat"] = "now"


class AgentBody(BaseModel):
    model_config = {"populate_by_name": True}

    message: Annotated[str, StringConstraints(min_length=1, max_length=256 * 1024, pattern=r"\S")]
    agent_id: AgentId | None = Field(None, alias="agentId")
    session_key: SessionKey | None = Field(None, alias="sessionKey")
    name: Name | None = None
    timeout_seconds: int | None = Field(None, alias="timeoutSeconds", ge=1, le=86_400)


class WakeAccepted(BaseModel):
    ok: Literal[True] = True
    mode: str
    runId: str | None = None
    duplicate: bool = False


class AgentAccepted(BaseModel):
    ok: Literal[True] = True
    runId: str
    duplicate: bool = False


class HookGate:
    """The checks every hook request passes before its body is even looked at."""

    def __init__(self, api: HttpApi) -> None:
        self.api = api

    async def admit(self, request: Request) -> tuple[str, dict[str, str]]:
        """The client IP and the lower-cased headers of an authenticated hook request."""
        hooks = self.api.config.hooks
        if not hooks.enabled or hooks.token is None or not hooks.token.get_secret_value():
            raise NotFound("hooks are not enabled")
        if any(key.lower() in _QUERY_TOKENS for key in request.query_params):
            raise InvalidParams("send the hook token in a header, never in the URL")
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Proven by the edge layer (edge.py): X-Forwarded-For only from Traefik.
        ip: str = request.scope[CLIENT_IP_KEY]
        key = f"ip:{ip}"
        locked = await self._limiter("status", key)
        if locked is not None and locked.get("allowed") is False:
            raise RateLimited(
                "too many bad hook tokens from this address",
                retryAfterMs=int(locked.get("retryAfterMs") or 1000),
            )
        if not hmac.compare_digest(
            _presented_token(headers).encode(), hooks.token.get_secret_value().encode()
        ):
            await self._limiter("fail", key)
            raise Unauthenticated("missing or wrong hook token")
        return ip, headers

    async def _limiter(self, verb: str, key: str) -> dict[str, Any] | None:
        """Ask the ratelimit service; when it is unreachable, admit (fail open) and log."""
        bus = self.api.host.bus
        try:
            result = await bus.request(
                bus.subjects.ratelimit(verb),
                {"rule": FAILURE_RULE, "key": key},
                timeout=1.0,
                unavailable="ratelimit",
            )
        except AisopodError as exc:
            log.warning("ratelimit %s failed (%s); admitting", verb, exc.message)
            return None
        return result if isinstance(result, dict) else None


def _presented_token(headers: dict[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("x-aisopod-token", "").strip()


def _principal(source: str, ip: str) -> Principal:
    return Principal(
        id=f"hook:{source}",
        role=Role.OPERATOR,
        scopes=(Scope.WRITE.value,),
        auth_method="hook-token",
        client_ip=ip,
    )


def _delivery_id(headers: dict[str, str]) -> str | None:
    for name in DELIVERY_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return value[:200]
    return None


def _parse(model: type[BaseModel], payload: Any) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


class HookRunner:
    def __init__(self, api: HttpApi) -> None:
        self.api = api

    async def once(self, source: str, headers: dict[str, str], run: Any) -> dict[str, Any]:
        """Run `run()` unless this delivery was accepted before; the answer either way."""
        delivery = _delivery_id(headers) or uuid.uuid4().hex
        deduper = self.api.hook_deliveries
        fresh = False

        async def first() -> dict[str, Any]:
            nonlocal fresh
            fresh = True
            answer = await run(delivery)
            record = {"id": delivery, "source": source, "time": int(time.time() * 1000)}
            return {"answer": answer, "record": record}

        stored = await deduper.run(f"hook:{source}:{delivery}", first)
        answer = dict(stored.get("answer", {})) if isinstance(stored, dict) else {}
        if not fresh:
            answer["duplicate"] = True
        return answer

    async def wake(self, text: str, mode: str, principal: Principal, delivery: str) -> dict:
        """The runtime's `wake`: the text queued as a system event for the default agent's
        main session; `now` also starts the agent's heartbeat turn, which takes it."""
        params = {"mode": mode, "text": text, "idempotencyKey": f"hook-wake:{delivery}"}
        woke = await self.api.host.bus.call("wake", params, principal=principal)
        return {"ok": True, "mode": mode, "runId": woke.get("runId")}

    async def agent(
        self,
        message: str,
        principal: Principal,
        delivery: str,
        *,
        agent_id: str | None,
        session_key: str | None,
        name: str,
        timeout_seconds: int | None,
    ) -> dict:
        agent_id = agent_id or self.api.config.models.agents.default_id
        params: dict[str, Any] = {
            "message": message,
            "agentId": agent_id,
            "sessionKey": session_key or f"agent:{agent_id}:hook:{name}:{uuid.uuid4().hex[:12]}",
            "idempotencyKey": f"hook-agent:{delivery}",
        }
        if timeout_seconds:
            params["timeoutMs"] = timeout_seconds * 1000
        result = await self.api.host.bus.call("agent", params, principal=principal)
        return {"ok": True, "runId": str(result.get("runId", ""))}


@router.post(
    "/hooks/wake",
    response_model=WakeAccepted,
    summary="A system event into the main session",
    openapi_extra=json_body(WakeBody.model_json_schema(by_alias=True)),
)
async def wake(request: Request, api: HttpApi = Depends(api_of)) -> Any:
    ip, headers = await HookGate(api).admit(request)
    return await _wake(api, ip, headers, parse_json_object(request.scope.get(BODY_KEY, b"")))


async def _wake(api: HttpApi, ip: str, headers: dict[str, str], payload: Any) -> Any:
    body = _parse(WakeBody, payload)
    runner = HookRunner(api)
    principal = _principal("wake", ip)
    return await runner.once(
        "wake", headers, lambda d: runner.wake(body.text, body.mode, principal, d)
    )


@router.post(
    "/hooks/agent",
    response_model=AgentAccepted,
    summary="An isolated agent turn",
    openapi_extra=json_body(AgentBody.model_json_schema(by_alias=True)),
)
async def agent(request: Request, api: HttpApi = Depends(api_of)) -> Any:
    ip, headers = await HookGate(api).admit(request)
    return await _agent(api, ip, headers, parse_json_object(request.scope.get(BODY_KEY, b"")))


async def _agent(api: HttpApi, ip: str, headers: dict[str, str], payload: Any) -> Any:
    body = _parse(AgentBody, payload)
    if body.session_key and not api.config.hooks.allow_request_session_key:
        raise InvalidParams("sessionKey is not allowed here (hooks.allowRequestSessionKey)")
    runner = HookRunner(api)
    name = body.name or "agent"
    principal = _principal(f"agent:{name}", ip)
    return await runner.once(
        "agent",
        headers,
        lambda d: runner.agent(
            body.message,
            principal,
            d,
            agent_id=body.agent_id,
            session_key=body.session_key,
            name=name,
            timeout_seconds=body.timeout_seconds,
        ),
    )


HOOK_ACTIONS = ("wake", "agent")


@router.post(
    "/hooks",
    response_model=WakeAccepted | AgentAccepted,
    summary="The wake or agent hook, the body naming the action",
    openapi_extra=json_body(
        {
            "type": "object",
            "required": ["action"],
            "properties": {"action": {"enum": list(HOOK_ACTIONS)}},
            "description": "`action` plus the body of /hooks/wake or /hooks/agent",
        }
    ),
)
@router.post("/hooks/", include_in_schema=False)
async def by_action(request: Request, api: HttpApi = Depends(api_of)) -> Any:
    """`POST /hooks` itself (no redirect of a POST to `/hooks/`): `{"action": "wake",
    ...}` is `/hooks/wake`, `{"action": "agent", ...}` is `/hooks/agent`."""
    ip, headers = await HookGate(api).admit(request)
    payload = parse_json_object(request.scope.get(BODY_KEY, b""))
    action = payload.get("action")
    if action == "wake":
        return await _wake(api, ip, headers, payload)
    if action == "agent":
        return await _agent(api, ip, headers, payload)
    raise InvalidParams(
        'POST /hooks needs "action": "wake" or "agent" in its body; or post to '
        "/hooks/wake, /hooks/agent or /hooks/<mapping path>",
        actions=list(HOOK_ACTIONS),
        paths=["/hooks/wake", "/hooks/agent", "/hooks/<mapping path>"],
    )


@router.post(
    "/hooks/{hook_path:path}",
    response_model=WakeAccepted | AgentAccepted,
    summary="A configured hook mapping",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {}}, "text/plain": {"schema": {}}},
        }
    },
)
async def mapped(hook_path: str, request: Request, api: HttpApi = Depends(api_of)) -> Any:
    ip, headers = await HookGate(api).admit(request)
    raw = request.scope.get(BODY_KEY, b"")
    hook = HookRequest(hook_path, headers, _body_value(raw))
    mapping = select(api.config.hooks.mappings, hook)
    if mapping is None:
        raise NotFound(f"no hook mapping matches /hooks/{hook_path}")
    message = render(mapping.template, hook).strip()
    if not message:
        raise InvalidParams(f"the template of mapping {mapping.name!r} rendered nothing")
    runner = HookRunner(api)
    principal = _principal(mapping.name, ip)
    return await runner.once(
        mapping.name, headers, lambda d: _run_mapping(runner, mapping, message, principal, d)
    )


async def _run_mapping(
    runner: HookRunner, mapping: HookMapping, message: str, principal: Principal, delivery: str
) -> dict:
    if mapping.action == "wake":
        return await runner.wake(message, mapping.mode, principal, delivery)
    return await runner.agent(
        message,
        principal,
        delivery,
        agent_id=mapping.agent_id,
        session_key=mapping.session_key,
        name=mapping.name,
        timeout_seconds=mapping.timeout_seconds,
    )


def _body_value(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return parse_json_object(raw)
    except InvalidParams:
        return raw.decode("utf-8", "replace")
