"""`POST /v1/chat/completions`: pick agent mode or the proxy fast path, as raw ASGI.

Raw ASGI (a plain Starlette route inside the FastAPI app, documented in openapi.py) so the
proxy path pays for no Request object, dependency solving or response model: parse the
body once with orjson, check the caller's scope, resolve the model, forward.

- `x-aisopod-agent-id` header, or `model` = `aisopod/<agentId>` → agent mode (runtime);
- any other `model` → the provider that serves it (upstream/targets.py), or 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from aisopod.errors import AisopodError, InvalidParams, invalid_params_from_validation
from aisopod.scopes import Requirement
from aisopod_http_api import rawio
from aisopod_http_api.agentchat import last_user_text
from aisopod_http_api.agentoptions import chat_options, report_ignored
from aisopod_http_api.agentturn import TurnRequest
from aisopod_http_api.edge import BODY_KEY, REQUEST_ID_KEY
from aisopod_http_api.identity import authorize, caller_of
from aisopod_http_api.openai_models import ChatCompletionRequest
from aisopod_http_api.sessionkeys import (
    AGENT_HEADER,
    SESSION_HEADER,
    check_agent_id,
    header,
    session_key,
)
from aisopod_http_api.upstream.targets import AGENT_PREFIX

if TYPE_CHECKING:
    from aisopod_http_api.service import HttpApi

IDEMPOTENCY_HEADER = b"idempotency-key"


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidParams("the body must be a JSON object", openaiCode="invalid_json") from None
    if not isinstance(payload, dict):
        raise InvalidParams("the body must be a JSON object", openaiCode="invalid_json")
    return payload


def validation_error(exc: ValidationError, payload: Any = None) -> InvalidParams:
    """400 naming the most relevant error (see invalid_params_from_validation); `param`
    is its path into the body (`input.0.content`)."""
    error = invalid_params_from_validation(exc.errors(), payload)
    loc = error.data.pop("loc", None)
    if loc:
        error.data["param"] = ".".join(loc)
    error.data["openaiCode"] = "invalid_request"
    return error


class ChatCompletionsEndpoint:
    def __init__(self, api: HttpApi) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        headers = scope["headers"]
        request_id: str = scope.get(REQUEST_ID_KEY) or ""
        try:
            caller = authorize(caller_of(scope), Requirement.WRITE)
            payload = parse_json_object(scope.get(BODY_KEY, b""))
            model = payload.get("model")
            if not isinstance(model, str) or not model:
                raise InvalidParams("`model` is required", param="model")
            agent_id = header(headers, AGENT_HEADER)
            if agent_id is None and model.startswith(AGENT_PREFIX):
                agent_id = model[len(AGENT_PREFIX) :]
            if agent_id is None:
                messages = payload.get("messages")
                if not isinstance(messages, list) or not messages:
                    raise InvalidParams("`messages` must be a non-empty list", param="messages")
                target = self.api.tables.get().resolve(model)
                await self.api.proxy.forward(path, receive, send, payload, target, request_id)
                return
            try:
                request = ChatCompletionRequest.model_validate(payload)
            except ValidationError as exc:
                raise validation_error(exc, payload) from None
            agent_id = check_agent_id(agent_id)
            output, ignored = chat_options(payload)
            report_ignored(scope, ignored)
            turn = TurnRequest(
                principal=caller.principal(),
                agent_id=agent_id,
                session_key=session_key(
                    agent_id, header(headers, SESSION_HEADER), request.user, "openai"
                ),
                message=last_user_text(request.messages) + output.instruction(),
                timeout_ms=self.api.agent_timeout_ms(),
                **_idempotency(headers),
            )
            await self.api.agent_chat.complete(path, receive, send, request, turn, output)
        except AisopodError as exc:
            await rawio.send_error(send, path, exc)


def _idempotency(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    key = header(headers, IDEMPOTENCY_HEADER)
    return {"idempotency_key": key[:200]} if key else {}
