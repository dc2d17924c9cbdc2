"""Traces: W3C trace context carried across the services, spans exported by OTLP/HTTP.

Off unless an OTLP endpoint is configured (`AISOPOD_OTLP_ENDPOINT`, or the standard
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`; docs/tracing.md).
Off, nothing of OpenTelemetry is imported and the hot paths pay one test of `ON` (or one
context variable read that finds nothing): the SDK, protobuf and the exporter's HTTP
client cost a process tens of MiB, and every span costs CPU.

On, each request gets a SERVER span where it enters a service (http-api's edge layer,
ws-gateway's dispatch, the RPC server), and the span is the `current` one for the task
that serves it: NATS requests made meanwhile carry its `traceparent` header (`Bus.request`,
ws-gateway's forward), the model provider call is a CLIENT span under it and sends
`traceparent` on, and every log line names its trace (logs.py). A caller's own
`traceparent` (HTTP header, JSON-RPC member, OpenClaw frame member, NATS header) makes
our span its child; one that is malformed is ignored (a new trace starts), as the W3C
Trace Context recommendation asks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("aisopod.tracing")

TRACEPARENT = "traceparent"
TRACEPARENT_RAW = b"traceparent"
SERVER = "server"
CLIENT = "client"
INTERNAL = "internal"

# version-traceid-parentid-flags; a later version may append fields (W3C Trace Context).
_HEADER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

ON = False
"""Whether spans are made in this process (some service of it configured an endpoint)."""


class Active:
    """What requests made now are children of: a span of ours, or a caller's context
    (`span` then a non-recording stand-in). `traceparent` is what a child is sent."""

    __slots__ = ("span", "span_id", "trace_id", "traceparent")

    def __init__(self, span: Any, trace_id: str, span_id: str, traceparent: str) -> None:
        self.span = span
        self.trace_id = trace_id
        self.span_id = span_id
        self.traceparent = traceparent


current: ContextVar[Active | None] = ContextVar("aisopod_trace", default=None)
"""The active span of the task (set where a request enters; inherited by its tasks)."""


class Span:
    """One span of ours; `active` is its context for children and log lines."""

    __slots__ = ("_span", "active")

    def __init__(self, span: Any, active: Active) -> None:
        self._span = span
        self.active = active

    @property
    def traceparent(self) -> str:
        return self.active.traceparent

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        """Mark the span failed (OpenTelemetry status ERROR)."""
        from opentelemetry.trace import Status, StatusCode

        self._span.set_status(Status(StatusCode.ERROR, description))

    def end(self, error: str | None = None) -> None:
        if error is not None:
            self.fail(error)
        self._span.end()


# -- configuration --------------------------------------------------------------------


def traces_endpoint(setting: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP URL spans are posted to, or None when tracing is off.

    `setting` (`AISOPOD_OTLP_ENDPOINT`) and `OTEL_EXPORTER_OTLP_ENDPOINT` are base URLs
    (`/v1/traces` is appended); `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the full URL.
    `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn tracing off whatever
    the endpoint."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if setting and setting.strip():
        return _signal_url(setting.strip())
    full = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if full:
        return full
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return _signal_url(base) if base else None


def _signal_url(base: str) -> str:
    return base.rstrip("/") + "/v1/traces"


def sample_rate(env: Mapping[str, str] | None = None) -> float:
    """The share of new traces sampled, from `OTEL_TRACES_SAMPLER(_ARG)` (what the SDK
    applies in the services; the launcher hands it to Traefik too)."""
    env = os.environ if env is None else env
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        try:
            return min(max(float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0")), 0.0), 1.0)
        except ValueError:
            return 1.0
    return 1.0


_tracers: dict[str, Any] = {}
_providers: dict[str, Any] = {}
_last: str | None = None
_service_of_task: ContextVar[str | None] | None = None


def configure(service: str, instance: str, endpoint: str | None = None) -> bool:
    """Start exporting `service`'s spans when an endpoint is configured; whether it is.

    Several services may share a process (`aisopod stack up --small`): each gets its own
    tracer (its own `service.name`), picked by the task's service like log records."""
    global ON, _last, _service_of_task
    url = traces_endpoint(endpoint)
    if url is None:
        return False
    # Imported only now: a process that does not trace never loads OpenTelemetry.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from aisopod.logs import current_service

    resource = Resource.create(
        {"service.name": service, "service.namespace": "aisopod", "service.instance.id": instance}
    )
    # The global provider stays the no-op one: libraries that trace by themselves
    # (FastAPI's built-in telemetry) stay off; our spans go through these tracers only.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    old = _providers.pop(service, None)
    if old is not None:
        old.shutdown()
    _providers[service] = provider
    _tracers[service] = provider.get_tracer("aisopod")
    _last = service
    _service_of_task = current_service
    ON = True
    where = urlsplit(url)
    log.info("exporting traces to %s://%s%s", where.scheme, where.hostname, where.path)
    return True


def shutdown(service: str, timeout_s: float = 2.0) -> None:
    """Send what `service` still holds, then stop its exporter (blocking: run in a
    thread). Tracing stays on for other services of the process."""
    global ON, _last
    provider = _providers.pop(service, None)
    _tracers.pop(service, None)
    if provider is None:
        return
    provider.force_flush(int(timeout_s * 1000))
    provider.shutdown()
    if _last == service:
        _last = next(iter(_tracers), None)
    ON = bool(_tracers)


def _tracer() -> Any:
    service = _service_of_task.get() if _service_of_task is not None else None
    tracer = _tracers.get(service or "") or _tracers.get(_last or "")
    return tracer


# -- spans ----------------------------------------------------------------------------


def parse(header: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a `traceparent` value, or None if malformed."""
    if not header or len(header) > 512:
        return None
    match = _HEADER.fullmatch(header.strip())  # lower-case hex only (W3C)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, int(flags, 16)


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The `traceparent` of raw (ASGI) request headers."""
    for name, value in headers:
        if name == TRACEPARENT_RAW:
            return value.decode("latin-1")
    return None


def start(
    name: str,
    *,
    kind: str = SERVER,
    parent: str | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Span | None:
    """A new span (None when tracing is off): the child of `parent` (a `traceparent`
    value) when it is well-formed, else of the task's current span, else a new trace."""
    if not ON:
        return None
    tracer = _tracer()
    if tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.context import Context

    context: Any = Context()
    remote = parse(parent)
    if remote is not None:
        trace_id, span_id, flags = remote
        context = trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(
                    int(trace_id, 16), int(span_id, 16), True, trace.TraceFlags(flags)
                )
            ),
            context,
        )
    else:
        active = current.get()
        if active is not None:
            context = trace.set_span_in_context(active.span, context)
    span = tracer.start_span(name, context, getattr(trace.SpanKind, kind.upper()), attributes)
    ids = span.get_span_context()
    trace_hex, span_hex = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    return Span(
        span,
        Active(span, trace_hex, span_hex, f"00-{trace_hex}-{span_hex}-{int(ids.trace_flags):02x}"),
    )


def use(span: Span | None) -> None:
    """Make `span` the task's current span (for the rest of the task and its children)."""
    if span is not None:
        current.set(span.active)


def adopt(traceparent: str | None) -> None:
    """Make a caller's context the task's current one, without a span of ours (a
    request whose spans are made further in, e.g. an OpenClaw frame's adapted calls)."""
    if not ON:
        return
    remote = parse(traceparent)
    if remote is None:
        return
    from opentelemetry import trace

    trace_id, span_id, flags = remote
    stand_in = trace.NonRecordingSpan(
        trace.SpanContext(int(trace_id, 16), int(span_id, 16), True, trace.TraceFlags(flags))
    )
    current.set(Active(stand_in, trace_id, span_id, f"00-{trace_id}-{span_id}-{flags:02x}"))


def with_traceparent(headers: dict[str, str] | None) -> dict[str, str] | None:
    """`headers` plus the current span's `traceparent` (a copy), or `headers` as they are
    when there is no current span."""
    active = current.get()
    if active is None:
        return headers
    return (
        {**headers, TRACEPARENT: active.traceparent}
        if headers
        else {TRACEPARENT: active.traceparent}
    )


async def spanning(span: Span, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """`events` as they come, `span` ended when they end (failed if they raise)."""
    error: str | None = None
    try:
        async for event in events:
            yield event
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        span.end(error)
