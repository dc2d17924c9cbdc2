"""`/a2ui/…`: the renderer page for agent-pushed UI surfaces, and its API.

- `GET /a2ui/` (R): the page (`?session=<sessionKey>`); its script and style are files
  (`/a2ui/a2ui.js`, `/a2ui/a2ui.css`) so the page runs under a CSP with no inline scripts.
- `GET /a2ui/surfaces?sessionKey=` (R): the session's surfaces now.
- `GET /a2ui/events?sessionKey=` (R): SSE `surface` (a surface, new or changed) and
  `remove` (`{surfaceId}`) events, from the canvas store's change feed.
- `POST /a2ui/surfaces` (W): push or replace a surface (scripts; agents use the canvas tool).
- `POST /a2ui/actions` (W): a user action, sent into the session as a message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from aisopod.catalogue.fields import SessionKey
from aisopod.errors import InvalidParams, NotFound, invalid_params_from_validation
from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.a2ui import (
    PushSurface,
    Surface,
    UserAction,
    action_message,
    session_prefix,
    surface_id_of,
    surface_object,
)
from aisopod_http_api.edge import BODY_KEY
from aisopod_http_api.identity import requires
from aisopod_http_api.openapi import json_body
from aisopod_http_api.routes.completions import parse_json_object
from aisopod_http_api.routes.shapes import PLAIN_ERRORS, Ok
from aisopod_http_api.service import HttpApi, api_of
from aisopod_http_api.sessionkeys import canonical
from aisopod_http_api.sse import encode

router = APIRouter(tags=["a2ui"], responses=PLAIN_ERRORS)

PING_S = 15.0
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
_STATIC = resources.files("aisopod_http_api").joinpath("static/a2ui")
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "a2ui.js": "text/javascript; charset=utf-8",
    "a2ui.css": "text/css; charset=utf-8",
}
_CONTENT = {name: _STATIC.joinpath(name).read_bytes() for name in _FILES}


class SurfaceList(BaseModel):
    ok: bool = True
    sessionKey: str
    surfaces: list[Surface]


class ActionAccepted(Ok):
    runId: str


def _canonical(api: HttpApi, session_key: str) -> str:
    key = canonical(session_key, api.config.models.agents.default_id)
    if not key.startswith("agent:") or key.count(":") < 2 or key.endswith(":"):
        raise InvalidParams(f"session key {session_key!r} must be agent:<agentId>:<name>")
    return key


def _static(name: str) -> Response:
    return Response(_CONTENT[name], media_type=_FILES[name], headers=_PAGE_HEADERS)


@router.get("/a2ui/", summary="The A2UI renderer page", response_class=Response)
async def page(_: Principal = Depends(requires(Requirement.READ))) -> Response:
    return _static("index.html")


@router.get("/a2ui/a2ui.js", summary="The renderer's script", response_class=Response)
async def script(_: Principal = Depends(requires(Requirement.READ))) -> Response:
    return _static("a2ui.js")


@router.get("/a2ui/a2ui.css", summary="The renderer's style", response_class=Response)
async def style(_: Principal = Depends(requires(Requirement.READ))) -> Response:
    return _static("a2ui.css")


async def _load(api: HttpApi, name: str) -> Surface | None:
    """The surface stored at `name`; a broken one is skipped (the agent wrote bad JSON)."""
    try:
        obj = await api.canvas.read(name)
        return Surface.model_validate(orjson.loads(obj.data))
    except (NotFound, ValueError, ValidationError):
        return None


async def _surfaces(api: HttpApi, session_key: str) -> list[Surface]:
    found = []
    for name in await api.canvas.names(session_prefix(session_key)):
        if surface_id_of(name, session_key) is not None:
            surface = await _load(api, name)
            if surface is not None:
                found.append(surface)
    return found


@router.get(
    "/a2ui/surfaces",
    response_model=None,
    responses={200: {"model": SurfaceList}},
    summary="A session's surfaces",
)
async def surfaces(
    session_key: SessionKey = Query(alias="sessionKey"),
    _: Principal = Depends(requires(Requirement.READ)),
    api: HttpApi = Depends(api_of),
) -> Any:
    session_key = _canonical(api, session_key)
    listed = await _surfaces(api, session_key)
    return {"ok": True, "sessionKey": session_key, "surfaces": [s.wire() for s in listed]}


@router.get(
    "/a2ui/events",
    summary="A session's surfaces as they change (SSE `surface` / `remove`)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(
    session_key: SessionKey = Query(alias="sessionKey"),
    _: Principal = Depends(requires(Requirement.READ)),
    api: HttpApi = Depends(api_of),
) -> StreamingResponse:
    session_key = _canonical(api, session_key)

    async def stream() -> AsyncIterator[bytes]:
        with api.canvas.subscribe() as subscription:  # before listing: nothing slips by
            yield b"retry: 2000\n\n"
            for surface in await _surfaces(api, session_key):
                yield encode("surface", surface.wire())
            async for change in subscription.changes(PING_S):
                if change is None:
                    yield b": ping\n\n"
                    continue
                surface_id = surface_id_of(change.name, session_key)
                if surface_id is None:
                    continue
                changed = None if change.deleted else await _load(api, change.name)
                if changed is None:
                    yield encode("remove", {"surfaceId": surface_id})
                else:
                    yield encode("surface", changed.wire())

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _parse(model: type[BaseModel], request: Request) -> Any:
    try:
        return model.model_validate(parse_json_object(request.scope.get(BODY_KEY, b"")))
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


@router.post(
    "/a2ui/surfaces",
    response_model=Ok,
    summary="Push or replace a surface",
    openapi_extra=json_body("PushSurface"),
)
async def push(
    request: Request,
    _: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> Any:
    body: PushSurface = _parse(PushSurface, request)
    name = surface_object(_canonical(api, body.session_key), body.surface.surface_id)
    await api.canvas.write(name, orjson.dumps(body.surface.wire()))
    return {"ok": True}


@router.post(
    "/a2ui/actions",
    response_model=ActionAccepted,
    summary="Send a user action into the session",
    openapi_extra=json_body("UserAction"),
)
async def act(
    request: Request,
    principal: Principal = Depends(requires(Requirement.WRITE)),
    api: HttpApi = Depends(api_of),
) -> Any:
    action: UserAction = _parse(UserAction, request)
    session_key = _canonical(api, action.session_key)
    params = {"sessionKey": session_key, "message": action_message(action)}
    result = await api.host.bus.call("chat.send", params, principal=principal)
    return {"ok": True, "runId": str(result.get("runId", ""))}
