"""OpenAI-shaped errors.

Handlers raise `OpenAIError`; the app turns it into a response in one place
(`app.FakeUpstreamApp`). The body is always `{"error":{"message","type","param","code"}}`,
which is what the `openai` SDK reads to fill `APIStatusError.body`.
"""

from __future__ import annotations

import orjson

from .http11 import Response

# The SDK picks its exception class from the status alone; the type string is for people
# reading logs and for gateways that map upstream error types.
_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_CODE_BY_STATUS: dict[int, str] = {
    401: "invalid_api_key",
    429: "rate_limit_exceeded",
}


def error_type_for(status: int) -> str:
    """The OpenAI error `type` used for an HTTP status."""
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    return "server_error" if status >= 500 else "invalid_request_error"


class OpenAIError(Exception):
    """An error that goes on the wire as an OpenAI error object with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code if code is not None else _CODE_BY_STATUS.get(status)
        self.error_type = error_type or error_type_for(status)
        self.headers = headers

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.error_type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )


def error_response(error: OpenAIError) -> Response:
    """The one place an `OpenAIError` becomes an HTTP response."""
    return Response(error.status, error.body(), headers=error.headers)
