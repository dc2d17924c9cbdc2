"""Structured JSON logging to stderr, also published to the LOGS stream for `logs.tail`.

Each record written while a request is served names it: `requestId`, and with tracing on
`traceId` and `spanId` (the span current at the time).

Publishing never blocks the caller: records go through a bounded queue that a task drains
into JetStream; on overflow records are dropped and counted. Values that look like secrets
(bearer tokens, `token=`/`password=` pairs) are masked in every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import Any, TextIO

from prometheus_client import Counter

from aisopod import codec, requestlog, tracing

LOGS_DROPPED = Counter("aisopod_log_records_dropped_total", "log records not published")

# The service a record belongs to when several share one process (`aisopod stack up
# --small`): each service's tasks run in a context where this names it. Unset in the usual
# one-service process, where records go to the service configured last.
current_service: ContextVar[str | None] = ContextVar("aisopod_current_service", default=None)

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(
        r"(?i)((?:token|password|secret|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{3,}"
    ),
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def mask_secrets(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text


def record_to_dict(record: logging.LogRecord, service: str, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ts": int(record.created * 1000),
        "level": record.levelname,
        "service": service,
        "instance": instance,
        "logger": record.name,
        "msg": mask_secrets(record.getMessage()),
    }
    if record.exc_info:
        body["exc"] = mask_secrets(logging.Formatter().formatException(record.exc_info))
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            body[key] = mask_secrets(value) if isinstance(value, str) else value
    # The request being served, when the record is written while serving one: its id
    # and its trace (aisopod.requestlog, aisopod.tracing) find every line of it.
    if body.get("requestId") is None:
        request_id = requestlog.current_request_id.get()
        if request_id is not None:
            body["requestId"] = request_id
    trace = tracing.current.get()
    if trace is not None:
        body["traceId"] = trace.trace_id
        body["spanId"] = trace.span_id
    return body


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service = service
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        return codec.dumps(record_to_dict(record, self.service, self.instance)).decode()


class StreamPublisher(logging.Handler):
    """Queues records for the LOGS stream; `run(js, subject)` publishes them."""

    def __init__(self, service: str, instance: str, maxsize: int = 10_000) -> None:
        super().__init__(level=logging.INFO)
        self.service = service
        self.instance = instance
        self.queue: asyncio.Queue[bytes] | None = None
        self.maxsize = maxsize
        self._task: asyncio.Task[None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.queue is None or record.name.startswith("nats"):
            return
        try:
            data = codec.dumps(record_to_dict(record, self.service, self.instance))
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            LOGS_DROPPED.inc()
        except Exception:  # a log record must never break the caller
            LOGS_DROPPED.inc()

    def start(self, js: Any, subject: str) -> None:
        self.queue = asyncio.Queue(self.maxsize)
        self._task = asyncio.create_task(self._run(js, subject), name="logs-publisher")

    async def _run(self, js: Any, subject: str) -> None:
        assert self.queue is not None
        while True:
            data = await self.queue.get()
            try:
                await js.publish(subject, data, timeout=2)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOGS_DROPPED.inc()

    async def stop(self) -> None:
        if self._task is None or self.queue is None:
            return
        deadline = time.monotonic() + 1.0
        while not self.queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self.queue = None


class ServiceRouter(logging.Handler):
    """The one root handler: passes each record to the handlers (stderr, LOGS stream) of
    the service that logged it, so co-hosted services keep their own names and streams."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.routes: dict[str, list[logging.Handler]] = {}
        self.last: str | None = None
        # Where the services' JSON lines go: stderr, or a file when they are hosted by a
        # process whose stderr is someone's console (`aisopod stack up --small`).
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        service = current_service.get()
        handlers = self.routes.get(service or "") or self.routes.get(self.last or "", [])
        for handler in handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def configure_logging(service: str, instance: str, level: str = "INFO") -> StreamPublisher:
    root = logging.getLogger()
    router = next((h for h in root.handlers if isinstance(h, ServiceRouter)), None)
    if router is None:
        root.handlers.clear()
        router = ServiceRouter()
        root.addHandler(router)
    handler = logging.StreamHandler(router.stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service, instance))
    publisher = StreamPublisher(service, instance)
    router.routes[service] = [handler, publisher]
    router.last = service
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return publisher
