"""Bare ASGI for the forwardAuth endpoints (auth `/verify`, ratelimit `/check`): Traefik
calls them on every request, so they skip the framework's routing and request objects."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


async def respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """One complete response; `headers` gets its content-length."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def answer_first(app: ASGIApp, path: str, endpoint: Any) -> ASGIApp:
    """`app` with HTTP requests for exactly `path` answered by `endpoint` before any
    routing or middleware of `app`."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == path:
            await endpoint(scope, receive, send)
        else:
            await app(scope, receive, send)

    return asgi
