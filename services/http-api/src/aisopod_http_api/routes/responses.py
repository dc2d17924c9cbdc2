"""`POST /v1/responses` (Open Responses), streamed and not.

`model`: `aisopod/<agentId>` (or the `x-aisopod-agent-id` header, or nothing: the default
agent) runs an agent turn; a provider model is served through the provider's Chat
Completions stream, which keeps function tools working (they come back as `function_call`
items). A failure before any output is a plain HTTP error; after `response.created` it is
`response.failed`. A client that disconnects stops the work (aborting the run or closing
the provider connection).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from aisopod.errors import AisopodError
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api import rawio
from aisopod_http_api.agentoptions import report_ignored, responses_options
from aisopod_http_api.agentturn import TurnRequest
from aisopod_http_api.edge import BODY_KEY, REQUEST_ID_KEY
from aisopod_http_api.identity import requires
from aisopod_http_api.openai_models import OpenAIError
from aisopod_http_api.openapi import json_body
from aisopod_http_api.responses.builder import ResponseBuilder
from aisopod_http_api.responses.convert import agent_message, chat_request, refuse_unsupported
from aisopod_http_api.responses.engines import AgentEngine, Engine, ProviderEngine
from aisopod_http_api.responses.models import CreateResponseBody
from aisopod_http_api.routes.completions import parse_json_object, validation_error
from aisopod_http_api.service import HttpApi, api_of
from aisopod_http_api.sessionkeys import (
    AGENT_HEADER,
    SESSION_HEADER,
    check_agent_id,
    header,
    session_key,
)
from aisopod_http_api.upstream.targets import AGENT_PREFIX

router = APIRouter(tags=["openai"], responses={"default": {"model": OpenAIError}})

_DOC = {
    **json_body("CreateResponseBody"),
    "responses": {
        "200": {
            "description": "A response object; with `stream: true`, `text/event-stream` "
            "Open Responses events",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }
    },
}


def _engine(
    api: HttpApi,
    scope: Scope,
    body: CreateResponseBody,
    payload: dict[str, Any],
    principal: Principal,
) -> tuple[Engine, str]:
    headers = scope["headers"]
    agent_id = header(headers, AGENT_HEADER)
    model = body.model or ""
    if agent_id is None and (not model or model.startswith(AGENT_PREFIX)):
        agent_id = model[len(AGENT_PREFIX) :] if model else api.config.models.agents.default_id
    if agent_id is not None:
        agent_id = check_agent_id(agent_id)
        output, ignored = responses_options(payload)
        report_ignored(scope, ignored)
        turn = TurnRequest(
            principal=principal,
            agent_id=agent_id,
            session_key=session_key(
                agent_id, header(headers, SESSION_HEADER), body.user, "responses"
            ),
            message=agent_message(body) + output.instruction(),
            timeout_ms=api.agent_timeout_ms(),
        )
        return AgentEngine(api.turns, turn, output), f"aisopod/{agent_id}"
    target = api.tables.get().resolve(model)
    request = chat_request(body, target.model)
    engine = ProviderEngine(api.proxy, target, request, scope.get(REQUEST_ID_KEY) or "")
    return engine, model


async def _whole(path: str, send: Send, engine: Engine, builder: ResponseBuilder) -> None:
    try:
        await engine.start()
        async for step in engine.steps():
            builder.apply(step)
    except AisopodError as exc:
        await rawio.send_error(send, path, exc)
        return
    finally:
        await engine.close()
    await rawio.send_bytes(send, 200, orjson.dumps(builder.resource()))


async def _stream(path: str, send: Send, engine: Engine, builder: ResponseBuilder) -> None:
    try:
        try:
            await engine.start()
        except AisopodError as exc:
            await rawio.send_error(send, path, exc)
            return
        await rawio.start_stream(send)
        for event in builder.started():
            await rawio.stream_chunk(send, event)
        try:
            async for step in engine.steps():
                for event in builder.apply(step):
                    await rawio.stream_chunk(send, event)
        except AisopodError as exc:
            code = str(exc.data.get("openaiCode") or exc.detail_code.lower())
            for event in builder.fail(code, exc.message):
                await rawio.stream_chunk(send, event)
        await rawio.end_stream(send)
    finally:
        await engine.close()


@router.post("/v1/responses", summary="Create a response (Open Responses)", openapi_extra=_DOC)
async def create_response(
    request: Request,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> rawio.AsgiResponse:
    scope = request.scope
    payload = parse_json_object(scope.get(BODY_KEY, b""))
    try:
        body = CreateResponseBody.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, payload) from None
    refuse_unsupported(body)
    engine, model = _engine(api, scope, body, payload, principal)
    builder = ResponseBuilder(body, model)
    path = scope["path"]

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        work = (_stream if body.stream else _whole)(path, send, engine, builder)
        if not await rawio.unless_gone(receive, work):
            await engine.close()

    return rawio.AsgiResponse(respond)
