"""Every answer of a service carries nosniff and no-referrer, once."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from aisopod.securityheaders import secured


async def _plain(_: Request) -> Response:
    return PlainTextResponse("refused", status_code=401)


async def _own(_: Request) -> Response:
    return PlainTextResponse("ok", headers={"Referrer-Policy": "no-referrer"})


async def test_every_answer_gets_both_headers_and_none_twice() -> None:
    app = secured(Starlette(routes=[Route("/refuse", _plain), Route("/own", _own)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, status in (("/refuse", 401), ("/own", 200), ("/missing", 404)):
            response = await client.get(path)
            assert response.status_code == status
            assert response.headers.get_list("x-content-type-options") == ["nosniff"], path
            assert response.headers.get_list("referrer-policy") == ["no-referrer"], path
