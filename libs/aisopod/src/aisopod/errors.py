"""The one exception tree of the gateway.

Every error that may reach a client is an `AisopodError` with a JSON-RPC `code`, a
`message` a person can act on, and structured `data` (`data.code` refines the name, e.g.
`MISSING_SCOPE`). The same object maps to a JSON-RPC error, a NATS reply and an HTTP status,
each in exactly one place per boundary.

    AisopodError
    ├── ParseError (-32700)          ├── Unauthenticated (-32001)   ├── NotPaired (-32011)
    ├── InvalidRequest (-32600)      ├── Forbidden (-32003)         ├── Unavailable (-32013)
    ├── MethodNotFound (-32601)      ├── NotFound (-32004)          └── RateLimited (-32029)
    ├── InvalidParams (-32602)       ├── Timeout (-32008)
    ├── InternalError (-32603)       └── Conflict (-32009)
"""

from __future__ import annotations

from typing import Any, ClassVar


class AisopodError(Exception):
    code: ClassVar[int] = -32603
    name: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self, message: str | None = None, *, data: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        self.message = message or self.default_message
        merged: dict[str, Any] = {"code": self.name}
        merged.update(data or {})
        merged.update({k: v for k, v in fields.items() if v is not None})
        self.data = merged
        super().__init__(self.message)

    @property
    def detail_code(self) -> str:
        """`data.code`: the refined name, e.g. AUTH_TOKEN_MISMATCH."""
        return str(self.data.get("code", self.name))

    def to_wire(self) -> dict[str, Any]:
        """`{"code", "message", "data"}` as JSON-RPC and the NATS reply carry it."""
        return {"code": self.code, "message": self.message, "data": self.data}

    @staticmethod
    def from_wire(error: dict[str, Any]) -> AisopodError:
        """Rebuild the right subclass from a wire error; unknown codes become InternalError."""
        cls = _BY_CODE.get(int(error.get("code", -32603)), InternalError)
        data = error.get("data")
        exc = cls(str(error.get("message") or cls.default_message))
        if isinstance(data, dict):
            exc.data = dict(data)
        return exc

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, data={self.data!r})"


class ParseError(AisopodError):
    code, name, http_status, default_message = -32700, "PARSE_ERROR", 400, "invalid JSON"


class InvalidRequest(AisopodError):
    code, name, http_status, default_message = -32600, "INVALID_REQUEST", 400, "invalid request"


class MethodNotFound(AisopodError):
    code, name, http_status, default_message = -32601, "METHOD_NOT_FOUND", 404, "unknown method"


class InvalidParams(AisopodError):
    code, name, http_status, default_message = -32602, "INVALID_PARAMS", 400, "invalid params"


class InternalError(AisopodError):
    pass


class Unauthenticated(AisopodError):
    code, name, http_status, default_message = -32001, "UNAUTHENTICATED", 401, "unauthenticated"


class Forbidden(AisopodError):
    code, name, http_status, default_message = -32003, "FORBIDDEN", 403, "forbidden"


class NotFound(AisopodError):
    code, name, http_status, default_message = -32004, "NOT_FOUND", 404, "not found"


class Timeout(AisopodError):
    code, name, http_status, default_message = -32008, "TIMEOUT", 504, "timed out"


class Conflict(AisopodError):
    code, name, http_status, default_message = -32009, "CONFLICT", 409, "conflict"


class NotPaired(AisopodError):
    code, name, http_status, default_message = -32011, "NOT_PAIRED", 403, "device not paired"


class Unavailable(AisopodError):
    code, name, http_status, default_message = -32013, "UNAVAILABLE", 503, "unavailable"

    def __init__(
        self, message: str | None = None, *, data: dict[str, Any] | None = None, **fields: Any
    ) -> None:
        fields.setdefault("retryable", True)
        super().__init__(message, data=data, **fields)


class RateLimited(AisopodError):
    code, name, http_status, default_message = -32029, "RATE_LIMITED", 429, "rate limited"

    @property
    def retry_after_ms(self) -> int:
        return int(self.data.get("retryAfterMs", 1000))


_BY_CODE: dict[int, type[AisopodError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        Unauthenticated,
        Forbidden,
        NotFound,
        Timeout,
        Conflict,
        NotPaired,
        Unavailable,
        RateLimited,
    )
}


def invalid_params_from_validation(errors: list[Any], data: Any = None) -> InvalidParams:
    """INVALID_PARAMS with pydantic's errors, trimmed to what a client can act on.

    A union (`str | list[Item]`, a tagged union of items) fails once per branch, and
    pydantic lists the branches in declaration order: the first error is often a branch the
    client never meant (`input.str: Input should be a valid string` for a list with one bad
    item). The message names the error that got deepest into the value instead (the branch
    that matched most), joining the messages of errors at that same place. With `data` (the
    validated value), union tags in `loc` (`str`, `list[...]`, a discriminator value) are
    dropped, so `loc` is the path into what the client sent (`input.0.role`).
    """
    cleaned = [
        {
            "loc": _client_loc(e.get("loc", ()), data),
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]
    if not cleaned:
        return InvalidParams("invalid params: params: invalid", errors=[])
    depth = max(len(e["loc"]) for e in cleaned)
    best = next(e for e in cleaned if len(e["loc"]) == depth)
    same_place = [e["msg"] for e in cleaned if e["loc"] == best["loc"]]
    where = ".".join(best["loc"]) or "params"
    message = " or ".join(dict.fromkeys(same_place))
    return InvalidParams(f"invalid params: {where}: {message}", errors=cleaned, loc=best["loc"])


def _client_loc(loc: Any, data: Any) -> list[str]:
    """`loc` as a path into `data`: parts that are no key or index of the value at that
    point are union tags pydantic added (`str`, `list[...]`, a discriminator's value), and
    are dropped; a missing key (the last part) stays. Without `data`, `loc` as is."""
    parts = list(loc)
    if data is None:
        return [str(p) for p in parts]
    path: list[str] = []
    value: Any = data
    for at, part in enumerate(parts):
        in_dict = isinstance(value, dict) and part in value
        if in_dict or (
            isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        ):
            value = value[part]
        elif at < len(parts) - 1 or not isinstance(value, dict):
            continue  # a tag: followed by the branch's own path, or on a non-container
        path.append(str(part))
    return path
