"""Errors on the HTTP surface: the two documented shapes, built in this one place.

Under `/v1` the OpenAI shape `{"error": {"message", "type", "param", "code"}}` (the SDKs
read `type`/`code`); elsewhere `{"ok": false, "error": {"type", "message"}}`. Handlers
raise `AisopodError`s; this module turns any of them (and Starlette's HTTP exceptions,
validation errors, anything unexpected) into a response. 401 carries
`WWW-Authenticate: Bearer`, 429 `Retry-After`, 405 `Allow`. Never a traceback.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aisopod.errors import (
    AisopodError,
    NotFound,
    RateLimited,
    Unauthenticated,
    invalid_params_from_validation,
)

log = logging.getLogger("aisopod.http_api")

V1_PREFIX = "/v1"


class PayloadTooLarge(AisopodError):
    code, name, http_status, default_message = -32600, "PAYLOAD_TOO_LARGE", 413, "body too large"


class MethodNotAllowed(AisopodError):
    code, name, http_status, default_message = (
        -32600,
        "METHOD_NOT_ALLOWED",
        405,
        "method not allowed",
    )


class UpstreamError(AisopodError):
    """The model provider failed (5xx, broken stream, unreachable, refused our key)."""

    code, name, http_status, default_message = -32013, "UPSTREAM_ERROR", 502, "upstream error"


class GatewayTimeout(AisopodError):
    """The provider or the agent did not answer in time (504)."""

    code, name, http_status, default_message = -32008, "UPSTREAM_TIMEOUT", 504, "upstream timed out"


class HttpStatusError(AisopodError):
    """Any other client error Starlette raises (e.g. 415), keeping its status."""

    code, name = -32600, "INVALID_REQUEST"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status  # type: ignore[misc]  # per instance: Starlette chose it


# OpenAI `type` per status (the names OpenAI and our fake upstream use), and the two we
# add for provider failures (docs/protocol/http.md).
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout",
}

_HTTP_NAMES = {
    400: "INVALID_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


def openai_body(status: int, message: str, code: str | None, param: str | None = None) -> bytes:
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def plain_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"ok": False, "error": {"type": kind, "message": message}})


def render(path: str, exc: AisopodError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and extra headers of the response for `exc` on `path`."""
    status = exc.http_status
    headers: list[tuple[bytes, bytes]] = []
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if isinstance(exc, RateLimited) or status == 429:
        seconds = max(1, math.ceil(int(exc.data.get("retryAfterMs", 1000)) / 1000))
        headers.append((b"retry-after", str(seconds).encode()))
    allow = exc.data.get("allow")
    if status == 405 and isinstance(allow, str):
        headers.append((b"allow", allow.encode()))
    if path == V1_PREFIX or path.startswith(V1_PREFIX + "/"):
        param = exc.data.get("param")
        body = openai_body(status, exc.message, _openai_code(exc), param if param else None)
    else:
        body = plain_body(exc.detail_code.lower(), exc.message)
    return status, body, headers


def _openai_code(exc: AisopodError) -> str:
    return str(exc.data.get("openaiCode") or exc.detail_code.lower())


def error_response(path: str, exc: AisopodError) -> Response:
    status, body, headers = render(path, exc)
    response = Response(body, status_code=status, media_type="application/json")
    for name, value in headers:
        response.headers[name.decode()] = value.decode()
    return response


def from_http_exception(exc: HTTPException) -> AisopodError:
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    error: AisopodError
    if status == 404:
        error = NotFound("no such route" if message == "Not Found" else message)
    elif status == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = MethodNotAllowed(f"method not allowed; allowed: {allow}", allow=allow)
    elif status == 401:
        error = Unauthenticated(message)
    elif status < 500:
        error = HttpStatusError(status, message)
    else:
        error = AisopodError(message)
    error.data["code"] = _HTTP_NAMES.get(status, error.detail_code)
    return error


async def _aisopod(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AisopodError)
    return error_response(request.url.path, exc)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(request.url.path, from_http_exception(exc))


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[Any] = list(exc.errors())
    cleaned = [{**e, "loc": [p for p in e.get("loc", ()) if p != "body"]} for e in errors]
    error = invalid_params_from_validation(cleaned)
    loc = error.data.pop("loc", None)
    if loc:
        error.data["param"] = ".".join(loc)
    error.data["openaiCode"] = "invalid_request"
    return error_response(request.url.path, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(request.url.path, AisopodError("internal error"))


def install(app: FastAPI) -> None:
    """Register the handlers: every error an endpoint raises leaves in the right shape."""
    app.add_exception_handler(AisopodError, _aisopod)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(Exception, _unexpected)
