"""`/canvas/…` (R): files from the `canvas` object store, with live reload for HTML.

`/canvas/x/y.html` serves object `x/y.html`; a path ending in `/` serves its `index.html`.
Content types by extension (`charset=utf-8` for text), `ETag` from the object digest,
`If-None-Match` → 304, traversal and malformed names → 400. HTML pages get
`<script src="/canvas/__aisopod/live.js">` before `</body>`: it listens on
`/canvas/__aisopod/events` (SSE of store changes) and reloads the page when it or a file
beside it changes. `__aisopod/` is reserved for these two.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from aisopod.principal import Principal
from aisopod.scopes import Requirement
from aisopod_http_api.canvasfiles import RESERVED, content_type, object_name
from aisopod_http_api.identity import requires
from aisopod_http_api.routes.shapes import PLAIN_ERRORS
from aisopod_http_api.service import HttpApi, api_of
from aisopod_http_api.sse import encode

router = APIRouter(tags=["canvas"], responses=PLAIN_ERRORS)

PING_S = 15.0
_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)
_FILE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "frame-ancestors 'self'",
}
_LIVE_JS = resources.files("aisopod_http_api").joinpath("static/canvas/live.js").read_bytes()


def inject_live_reload(html: bytes, name: str) -> bytes:
    safe = name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    tag = f'<script src="/canvas/{RESERVED}/live.js" data-canvas="{safe}" defer></script>'
    tag_bytes = tag.encode()
    matches = list(_BODY_END.finditer(html))
    if not matches:
        return html + tag_bytes
    at = matches[-1].start()
    return html[:at] + tag_bytes + html[at:]


@router.get(f"/canvas/{RESERVED}/live.js", summary="The canvas live-reload script")
async def live_js(_: Principal = Depends(requires(Requirement.READ))) -> Response:
    return Response(
        _LIVE_JS, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@router.get(
    f"/canvas/{RESERVED}/events",
    summary="Canvas changes (SSE `change` events: {name, deleted})",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def canvas_events(
    _: Principal = Depends(requires(Requirement.READ)), api: HttpApi = Depends(api_of)
) -> StreamingResponse:
    async def changes() -> AsyncIterator[bytes]:
        with api.canvas.subscribe() as subscription:
            yield b"retry: 2000\n: connected\n\n"
            async for change in subscription.changes(PING_S):
                if change is None:
                    yield b": ping\n\n"
                    continue
                yield encode("change", {"name": change.name, "deleted": change.deleted})

    return StreamingResponse(
        changes(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.get("/canvas/{path:path}", summary="A canvas file", response_class=Response)
async def canvas_file(
    path: str,
    request: Request,
    _: Principal = Depends(requires(Requirement.READ)),
    api: HttpApi = Depends(api_of),
) -> Response:
    name = object_name(path)
    obj = await api.canvas.read(name)
    if request.headers.get("if-none-match") == obj.etag:
        return Response(status_code=304, headers={"ETag": obj.etag, **_FILE_HEADERS})
    kind = content_type(name)
    data = obj.data
    if kind.startswith("text/html"):
        data = inject_live_reload(data, name)
    return Response(data, media_type=kind, headers={"ETag": obj.etag, **_FILE_HEADERS})
