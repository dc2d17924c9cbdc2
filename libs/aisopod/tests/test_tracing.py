"""aisopod.tracing in one process: the W3C header rules, where spans are exported to, that
nothing of the SDK loads while tracing is off, and (on) the parent links, the propagated
`traceparent` and the ids in log records, checked at an OTLP receiver."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from aisopod import jsonrpc, requestlog, tracing
from aisopod.logs import record_to_dict
from tests.support.otlp import OtlpReceiver

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (HEADER, (TRACE, PARENT, 1)),
        (f"00-{TRACE}-{PARENT}-00", (TRACE, PARENT, 0)),  # not sampled: still a context
        (f"01-{TRACE}-{PARENT}-01-later-fields", (TRACE, PARENT, 1)),  # a later version
        (f"00-{TRACE}-{PARENT}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-{PARENT}-01", None),  # the forbidden version
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{PARENT}-01", None),  # lower-case hex only
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        ("", None),
        (None, None),
        ("00-" + "a" * 600, None),
    ],
)
def test_traceparent_values_are_parsed_as_w3c_trace_context_says(
    header: str | None, parsed: tuple[str, str, int] | None
) -> None:
    assert tracing.parse(header) == parsed


def test_the_endpoint_comes_from_our_setting_then_the_standard_variables() -> None:
    assert tracing.traces_endpoint(None, {}) is None
    assert tracing.traces_endpoint("http://c:4318/", {}) == "http://c:4318/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318"}
    assert tracing.traces_endpoint(None, env) == "http://base:4318/v1/traces"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://full:9/traces"
    assert tracing.traces_endpoint(None, env) == "http://full:9/traces"
    assert tracing.traces_endpoint("http://ours:1", env) == "http://ours:1/v1/traces"
    assert tracing.traces_endpoint("http://ours:1", env | {"OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.traces_endpoint("http://ours:1", {"OTEL_TRACES_EXPORTER": "none"}) is None


def test_sample_rate_follows_the_sdk_sampler_variables() -> None:
    assert tracing.sample_rate({}) == 1.0
    assert tracing.sample_rate({"OTEL_TRACES_SAMPLER": "always_off"}) == 0.0
    ratio = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    assert tracing.sample_rate(ratio) == 0.25


def test_off_no_span_is_made_and_the_sdk_is_never_imported() -> None:
    code = (
        "import sys\n"
        "from aisopod import bus, host, logs, rpc, tracing\n"
        "assert tracing.configure('runtime', 'i', None) is False\n"
        f"assert tracing.start('x', parent={HEADER!r}) is None\n"
        "assert tracing.with_traceparent({'a': 'b'}) == {'a': 'b'}\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no OTEL_* variables
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_jsonrpc_call_keeps_the_callers_traceparent_when_it_is_a_string() -> None:
    frame = b'{"jsonrpc":"2.0","id":1,"method":"health","traceparent":"%s"}' % HEADER.encode()
    call = jsonrpc.decode(frame).items[0]
    assert isinstance(call, jsonrpc.Call) and call.traceparent == HEADER
    odd = jsonrpc.decode(b'{"id":1,"method":"health","traceparent":7}').items[0]
    assert isinstance(odd, jsonrpc.Call) and odd.traceparent is None


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        assert tracing.configure("runtime", "runtime-1", receiver.endpoint)
        try:
            yield receiver
        finally:
            tracing.shutdown("runtime")
    assert tracing.ON is False


def test_on_spans_link_to_the_caller_and_log_records_name_them(receiver: OtlpReceiver) -> None:
    async def serve() -> tuple[str, dict[str, object], str]:
        requestlog.current_request_id.set("req-1")
        server = tracing.start("agent", parent=HEADER, attributes={"rpc.method": "agent"})
        assert server is not None and server.active.trace_id == TRACE
        tracing.use(server)
        # What a NATS request made now carries.
        sent = tracing.with_traceparent({"Aisopod-Principal": "p"})
        assert sent is not None and sent["traceparent"] == server.traceparent
        record = logging.LogRecord("aisopod.test", logging.INFO, __file__, 1, "hi", None, None)
        fields = record_to_dict(record, "runtime", "runtime-1")

        async def events() -> AsyncIterator[int]:
            yield 1
            raise RuntimeError("upstream broke")

        call = tracing.start("chat m", kind=tracing.CLIENT)
        assert call is not None
        with pytest.raises(RuntimeError):
            async for _ in tracing.spanning(call, events()):
                pass
        server.end()
        return server.active.span_id, fields, call.active.span_id

    server_span, fields, call_span = asyncio.run(serve())
    assert fields["requestId"] == "req-1"
    assert fields["traceId"] == TRACE and fields["spanId"] == server_span
    tracing.shutdown("runtime")  # flushes
    spans = {s.name: s for s in receiver.spans(TRACE)}
    assert spans["agent"].parent_span_id == PARENT and spans["agent"].kind == "server"
    assert spans["agent"].service == "runtime"
    assert spans["chat m"].parent_span_id == server_span == spans["agent"].span_id
    assert spans["chat m"].span_id == call_span and spans["chat m"].kind == "client"
    assert spans["chat m"].status_code == 2  # ERROR: the stream raised


def test_on_a_malformed_parent_starts_a_new_trace(receiver: OtlpReceiver) -> None:
    span = tracing.start("health", parent=f"00-{TRACE.upper()}-{PARENT}-01")
    assert span is not None and span.active.trace_id != TRACE.lower()
    span.end()
