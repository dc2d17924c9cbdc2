"""Request logging in the services: one structured line per HTTP request or RPC, logger
`aisopod.requests`, fields `kind` (http | ws | rpc), `method`, `principal`, `status`,
`durationMs`, `requestId`.

Lines are DEBUG by default (a busy gateway would otherwise write one per request); the
live configuration's `logging.requests: true` makes them INFO, so they reach stderr and
the LOGS stream (`logs.tail`) at the default level.

The request id: HTTP's `X-Request-Id` (the client's or a fresh one, aisopod.requestid),
or one ws-gateway makes per forwarded call while request logging is on. It travels over
NATS as the `Aisopod-Trace-Id` header; the RPC server puts the incoming one in a context
variable for the handler, and `Bus.call` adds it to the calls the handler makes, so one id
finds a request in the log of every service it went through.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("aisopod.requests")

current_request_id: ContextVar[str | None] = ContextVar("aisopod_request_id", default=None)

_level = logging.DEBUG


def configure(enabled: bool) -> None:
    """`logging.requests` of the live configuration: INFO lines when on, else DEBUG."""
    global _level
    _level = logging.INFO if enabled else logging.DEBUG


def active() -> bool:
    """Whether a request line would be written now (callers skip the bookkeeping if not)."""
    return log.isEnabledFor(_level)


def new_id() -> str:
    return os.urandom(8).hex()


def record(
    kind: str,
    method: str,
    *,
    principal: str | None,
    status: str | int,
    duration_ms: float,
    request_id: str | None,
    **extra: Any,
) -> None:
    if not log.isEnabledFor(_level):
        return
    log.log(
        _level,
        "%s %s %s %.1fms",
        kind,
        method,
        status,
        duration_ms,
        extra={
            "kind": kind,
            "method": method,
            "principal": principal,
            "status": status,
            "durationMs": round(duration_ms, 2),
            "requestId": request_id,
            **extra,
        },
    )
