"""The two headers every answer of every service carries, whoever produced it.

`X-Content-Type-Options: nosniff` (a browser never guesses a type from the body) and
`Referrer-Policy: no-referrer` (no URL of ours leaks to another site). Traefik adds them on
its routes, but a service's own refusals (401, 403, 429, 404 of an unknown path) and any
answer given to a peer that did not come through Traefik must carry them too, so each
service process adds them itself: `serve` wraps every uvicorn app with `secured`, and
ws-gateway's own HTTP answers use `SECURITY_HEADERS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ws-gateway imports the constant and runs no ASGI at all
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
_RAW = [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS]
_NAMES = frozenset(name for name, _ in _RAW)


def secured(app: ASGIApp) -> ASGIApp:
    """`app` whose HTTP responses all carry SECURITY_HEADERS (added where missing: an
    inner layer may have set them already)."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers} & _NAMES
                if len(present) < len(_NAMES):
                    headers += [(n, v) for n, v in _RAW if n not in present]
                    message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_secured)

    return asgi
