"""The OpenAPI document, served at `/v1/openapi.json`.

FastAPI generates it from the routes. Two things it cannot see are added here: the raw
`POST /v1/chat/completions` route (raw ASGI for speed; documented from the same pydantic
models agent mode validates with), and the request models of routes that parse their own
bodies after their checks (hooks, responses, A2UI), referenced from `components`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from aisopod_http_api.a2ui import PushSurface, UserAction
from aisopod_http_api.openai_models import ChatCompletion, ChatCompletionRequest, OpenAIError
from aisopod_http_api.responses.models import CreateResponseBody


def json_body(schema: dict[str, Any] | str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body itself (the edge hands it over
    raw): the required body's schema, inline or by component name."""
    if isinstance(schema, str):
        schema = {"$ref": f"#/components/schemas/{schema}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


DESCRIPTION = """\
The aisopod gateway's HTTP API (docs/protocol/http.md): OpenAI-compatible `/v1`, hooks,
tools, status, canvas and A2UI. Requests reach it through Traefik; the service checks
`Authorization: Bearer` with the auth service; `/hooks` takes the hook token instead.
Errors: OpenAI's shape under `/v1`, `{"ok": false, "error": {"type", "message"}}` elsewhere.
"""

_REF = "#/components/schemas/{model}"


def _add_models(schema: dict[str, Any], *models: type[BaseModel]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        body = model.model_json_schema(by_alias=True, ref_template=_REF)
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body


def _chat_completions() -> dict[str, Any]:
    return {
        "post": {
            "tags": ["openai"],
            "summary": "Create a chat completion",
            "description": "`aisopod/<agentId>` (or header `x-aisopod-agent-id`) runs an agent "
            "turn; a provider model is proxied to its provider (streamed bytes untouched). "
            "Session: header `x-aisopod-session-key`, else `user`, else a fresh one.",
            "operationId": "create_chat_completion",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": _REF.format(model="ChatCompletionRequest")}
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "`chat.completion`, or with `stream: true` SSE "
                    "`chat.completion.chunk` events and `data: [DONE]`",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(model="ChatCompletion")}
                        },
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "default": {
                    "description": "An OpenAI-shaped error",
                    "content": {
                        "application/json": {"schema": {"$ref": _REF.format(model="OpenAIError")}}
                    },
                },
            },
        }
    }


def _probes() -> dict[str, Any]:
    """`/health` and `/ready` (aisopod.app, shared by every service) and their `z`
    aliases: no credential."""

    def probe(summary: str, codes: dict[str, str]) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["gateway"],
                "summary": summary,
                "operationId": summary.lower().replace(" ", "_"),
                "security": [],
                "responses": {
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                    for code, text in codes.items()
                },
            }
        }

    live = {"200": '`{"ok": true, ...}`'}
    ready = {"200": "ready", "503": "not ready: starting, NATS down, draining"}
    return {
        "/health": probe("Liveness", live),
        "/healthz": probe("Liveness alias", live),
        "/ready": probe("Readiness", ready),
        "/readyz": probe("Readiness alias", ready),
    }


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title="aisopod gateway HTTP API",
                version=app.version,
                description=DESCRIPTION,
                routes=app.routes,
            )
            paths = schema.setdefault("paths", {})
            paths["/v1/chat/completions"] = _chat_completions()
            paths.update(_probes())
            _add_models(
                schema,
                ChatCompletionRequest,
                ChatCompletion,
                OpenAIError,
                CreateResponseBody,
                PushSurface,
                UserAction,
            )
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
