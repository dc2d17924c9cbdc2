"""`POST /v1/responses` (Open Responses), streamed and not.

`model`: `aisopod/<agentId>` (or the `x-aisopod-agent-id` header, or nothing: the default
agent) runs an agent turn; a provider model is served through the provider's Chat
Completions stream, which keeps function tools working (they come back as `function_call`
items). A failure before any output is a plain HTTP error; after `response.created` it is
`response.failed`. A client that disconnects stops the work (aborting the run or closing
the provider connection).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from aisopod.errors import AisopodError, InvalidParams
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api import rawio
from aisopod_http_api.agentoptions import report_ignored, responses_options
from aisopod_http_api.agentturn import TurnRequest, Usage, message_text
from aisopod_http_api.edge import BODY_KEY, REQUEST_ID_KEY
from aisopod_http_api.identity import requires
from aisopod_http_api.openai_models import OpenAIError
from aisopod_http_api.openapi import json_body
from aisopod_http_api.responses import compaction
from aisopod_http_api.responses.builder import ResponseBuilder, usage_body
from aisopod_http_api.responses.convert import (
    agent_message,
    chat_request,
    input_messages,
    refuse_unsupported,
)
from aisopod_http_api.responses.engines import (
    AgentEngine,
    Engine,
    Finished,
    ProviderEngine,
    TextDelta,
)
from aisopod_http_api.responses.models import CreateResponseBody
from aisopod_http_api.responses.store import StoredResponse
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


@dataclass
class Plan:
    """What a request runs, and what is stored of it afterwards."""

    engine: Engine
    model: str
    record: StoredResponse
    history: list[dict[str, Any]] = field(default_factory=list)  # provider mode


def _agent_id(api: HttpApi, scope: Scope, model: str) -> str | None:
    agent_id = header(scope["headers"], AGENT_HEADER)
    if agent_id is None and (not model or model.startswith(AGENT_PREFIX)):
        agent_id = model[len(AGENT_PREFIX) :] if model else api.config.models.agents.default_id
    return check_agent_id(agent_id) if agent_id is not None else None


def _plan(
    api: HttpApi,
    scope: Scope,
    body: CreateResponseBody,
    payload: dict[str, Any],
    principal: Principal,
    previous: StoredResponse | None,
) -> Plan:
    headers = scope["headers"]
    model = body.model or ""
    agent_id = _agent_id(api, scope, model)
    if previous is not None and (previous.agent_id or None) != agent_id:
        were = f"aisopod/{previous.agent_id}" if previous.agent_id else "a provider model"
        raise InvalidParams(
            f"previous_response_id was made by {were}: chain with the same model",
            param="previous_response_id",
        )
    if agent_id is not None:
        output, ignored = responses_options(payload)
        report_ignored(scope, ignored)
        key = session_key(agent_id, header(headers, SESSION_HEADER), body.user, "responses")
        if previous is not None and previous.session_key:
            # Chained: the same session, whose transcript holds the conversation so far.
            if header(headers, SESSION_HEADER) and key != previous.session_key:
                raise InvalidParams(
                    f"x-aisopod-session-key names another session than previous_response_id "
                    f"({previous.session_key}): send one of them",
                    param="previous_response_id",
                )
            key = previous.session_key
        turn = TurnRequest(
            principal=principal,
            agent_id=agent_id,
            session_key=key,
            message=agent_message(body) + output.instruction(),
            timeout_ms=api.agent_timeout_ms(),
        )
        record = StoredResponse(
            resource={}, principal=principal.id, agent_id=agent_id, session_key=key
        )
        return Plan(AgentEngine(api.turns, turn, output), f"aisopod/{agent_id}", record)
    target = api.tables.get().resolve(model)
    history = list(previous.messages) if previous is not None else []
    request = chat_request(body, target.model, history)
    engine = ProviderEngine(api.proxy, target, request, scope.get(REQUEST_ID_KEY) or "")
    record = StoredResponse(
        resource={}, principal=principal.id, messages=history + input_messages(body)
    )
    return Plan(engine, model, record, history)


def _output_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The response's output items as chat messages, for the next chained request."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "message":
            text = "".join(part.get("text", "") for part in item["content"])
            messages.append({"role": "assistant", "content": text})
        elif item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last and last.get("tool_calls") is not None:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    return messages


Finish = Callable[[], Awaitable[None]]


async def _whole(
    path: str, send: Send, engine: Engine, builder: ResponseBuilder, finish: Finish
) -> None:
    try:
        await engine.start()
        async for step in engine.steps():
            builder.apply(step)
    except AisopodError as exc:
        await rawio.send_error(send, path, exc)
        return
    finally:
        await engine.close()
    await finish()
    await rawio.send_bytes(send, 200, orjson.dumps(builder.resource()))


async def _stream(
    path: str, send: Send, engine: Engine, builder: ResponseBuilder, finish: Finish
) -> None:
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
                events = builder.apply(step)
                if isinstance(step, Finished):
                    await finish()  # stored before the client hears it is complete
                for event in events:
                    await rawio.stream_chunk(send, event)
        except AisopodError as exc:
            code = str(exc.data.get("openaiCode") or exc.detail_code.lower())
            for event in builder.fail(code, exc.message):
                await rawio.stream_chunk(send, event)
        await rawio.end_stream(send)
    finally:
        await engine.close()


def _read_body(scope: Scope) -> tuple[CreateResponseBody, dict[str, Any]]:
    """The request body, validated, and the raw object (whose extra fields the plan reads)."""
    payload = parse_json_object(scope.get(BODY_KEY, b""))
    try:
        return CreateResponseBody.model_validate(payload), payload
    except ValidationError as exc:
        raise validation_error(exc, payload) from None


async def _previous(
    api: HttpApi, body: CreateResponseBody, principal: Principal
) -> StoredResponse | None:
    """The stored response `previous_response_id` chains onto, if the body names one."""
    if not body.previous_response_id:
        return None
    return await api.responses.get(body.previous_response_id, principal, "previous_response_id")


@router.post("/v1/responses", summary="Create a response (Open Responses)", openapi_extra=_DOC)
async def create_response(
    request: Request,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> rawio.AsgiResponse:
    scope = request.scope
    body, payload = _read_body(scope)
    refuse_unsupported(body)
    previous = await _previous(api, body, principal)
    plan = _plan(api, scope, body, payload, principal, previous)
    builder = ResponseBuilder(body, plan.model)
    path = scope["path"]

    async def finish() -> None:
        if body.store is False:
            return
        plan.record.resource = builder.resource()
        if plan.record.agent_id is None:
            plan.record.messages += _output_messages(builder.items)
        await api.responses.put(plan.record)

    engine = plan.engine

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        work = (_stream if body.stream else _whole)(path, send, engine, builder, finish)
        if not await rawio.unless_gone(receive, work):
            await engine.close()

    return rawio.AsgiResponse(respond)


@router.get("/v1/responses/{response_id}", summary="Get a stored response")
async def get_response(
    response_id: str,
    principal: Principal = Depends(requires(Requirement.READ)),
    api: HttpApi = Depends(api_of),
) -> dict[str, Any]:
    record = await api.responses.get(response_id, principal, "response_id")
    return record.resource


@router.delete("/v1/responses/{response_id}", summary="Delete a stored response")
async def delete_response(
    response_id: str,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> dict[str, Any]:
    await api.responses.delete(response_id, principal)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


async def _conversation(
    api: HttpApi, body: CreateResponseBody, principal: Principal, previous: StoredResponse | None
) -> list[dict[str, Any]]:
    """What is to be compacted: the chained conversation (an agent's from its session
    transcript), then the input items."""
    history: list[dict[str, Any]] = []
    if previous is not None and previous.session_key:
        result = await api.host.bus.call(
            "chat.history",
            {"sessionKey": previous.session_key, "limit": 1000},
            principal=principal,
        )
        for message in result.get("messages", []) if isinstance(result, dict) else []:
            if message.get("role") in ("user", "assistant") and message.get("content"):
                history.append({"role": message["role"], "content": message_text(message)})
    elif previous is not None:
        history = list(previous.messages)
    return history + input_messages(body)


@router.post(
    "/v1/responses/compact",
    summary="Compact a conversation into one compaction item",
    openapi_extra=json_body("CreateResponseBody"),
)
async def compact_response(
    request: Request,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> rawio.AsgiResponse:
    scope = request.scope
    body, _ = _read_body(scope)
    if body.stream:
        raise InvalidParams("compaction is not streamed", param="stream")
    previous = await _previous(api, body, principal)
    conversation = await _conversation(api, body, principal, previous)
    if not conversation:
        raise InvalidParams("nothing to compact: give input or previous_response_id", param="input")
    prompt = f"{compaction.INSTRUCTION}\n\n{compaction.transcript(conversation)}"
    agent_id = _agent_id(api, scope, body.model or "")
    engine: Engine
    if agent_id is not None:
        turn = TurnRequest(
            principal=principal,
            agent_id=agent_id,
            # A session of its own: the summary is no turn of the conversation it sums up.
            session_key=f"agent:{agent_id}:compact:{uuid.uuid4().hex}",
            message=prompt,
            timeout_ms=api.agent_timeout_ms(),
        )
        engine, model = AgentEngine(api.turns, turn), f"aisopod/{agent_id}"
    else:
        target = api.tables.get().resolve(body.model or "")
        chat = {
            "model": target.model,
            "messages": [
                *([{"role": "system", "content": body.instructions}] if body.instructions else []),
                {"role": "user", "content": prompt},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        engine = ProviderEngine(api.proxy, target, chat, scope.get(REQUEST_ID_KEY) or "")
        model = body.model or ""
    path = scope["path"]

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        async def work() -> None:
            summary: list[str] = []
            usage = Usage()
            try:
                await engine.start()
                async for step in engine.steps():
                    if isinstance(step, TextDelta):
                        summary.append(step.text)
                    elif isinstance(step, Finished):
                        usage = step.usage
            except AisopodError as exc:
                await rawio.send_error(send, path, exc)
                return
            finally:
                await engine.close()
            item = {
                "type": "compaction",
                "id": f"cmp_{uuid.uuid4().hex}",
                "encrypted_content": compaction.encode("".join(summary)),
                "created_by": model,
            }
            answer = {
                "id": f"resp_{uuid.uuid4().hex}",
                "object": "response.compaction",
                "created_at": int(time.time()),
                "output": [*compaction.user_items(conversation), item],
                "usage": usage_body(usage),
            }
            await rawio.send_bytes(send, 200, orjson.dumps(answer))

        if not await rawio.unless_gone(receive, work()):
            await engine.close()

    return rawio.AsgiResponse(respond)
