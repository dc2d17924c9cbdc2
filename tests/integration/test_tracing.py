"""Traces through the real stack (docs/tracing.md): a stack of its own exporting to an
OTLP receiver in this process, Traefik's tracing on. One `/v1/chat/completions` request
(the official openai SDK, with its own `traceparent`) and one WebSocket request (JSON-RPC,
and an OpenClaw frame) each make one trace from the client's span through the edge, the
service that acts and the model call to the fake upstream, which receives the
`traceparent` of that call; the log lines of the request name its trace and request id."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect

from aisopod_ops.launcher.spawn import start_local_stack, stop_local_stack
from tests.conftest import seed_config
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.ws_client import WsClient

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TracedStack:
    http_url: str
    ws_url: str
    openclaw_url: str
    token: str
    state_dir: Path
    receiver: OtlpReceiver
    fake: Any


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[TracedStack]:
    with OtlpReceiver() as receiver:
        state = tmp_path_factory.mktemp("traced") / "state"
        state.mkdir()
        config = seed_config(fake_upstream.base_url)
        # Agent turns of `main` go to the fake upstream; every request logs a line.
        config["models"]["agents"] = {"model": "fake/fake-small"}
        config["logging"] = {"requests": True}
        seed = state.parent / "aisopod.yaml"
        seed.write_text(json.dumps(config))
        env = {
            "AISOPOD_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not 5 s
        }
        proc, info = start_local_stack(state, "--config", str(seed), "--replicas", "1", env=env)
        try:
            yield TracedStack(
                http_url=info["http_url"],
                ws_url=info["ws_url"],
                openclaw_url=info["openclaw_url"],
                token=info["admin_token"],
                state_dir=Path(info["state_dir"]),
                receiver=receiver,
                fake=fake_upstream,
            )
        finally:
            stop_local_stack(proc)


def client_context() -> tuple[str, str, str]:
    """A client's own span: (trace id, span id, its traceparent header)."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def one(spans: list[ReceivedSpan], service: str, name: str, kind: str) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and s.name == name and s.kind == kind]
    assert len(found) == 1, f"{service} {kind} span {name!r}: {found}"
    return found[0]


def has(service: str, name: str, kind: str) -> Any:
    return lambda spans: any(
        s.service == service and s.name == name and s.kind == kind for s in spans
    )


def upstream_traceparent(fake: Any, word: str) -> str:
    """The traceparent the fake upstream received with the chat request naming `word`."""
    sent = [
        r for r in fake.request_log() if word in json.dumps(r.get("body") or {}, ensure_ascii=False)
    ]
    assert sent, f"the fake upstream saw no request with {word}"
    header = sent[-1]["headers"].get("traceparent")
    assert header, f"no traceparent reached the upstream: {sent[-1]['headers']}"
    return str(header)


def log_lines(state_dir: Path, service: str, trace_id: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((state_dir / "logs").glob(f"{service}*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if trace_id in line and line.startswith("{"):
                out.append(json.loads(line))
    return out


def model_call_spans(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [
        s
        for s in spans
        if s.kind == "client" and s.service == "runtime" and s.parent_span_id == parent.span_id
    ]


def test_one_v1_chat_completion_is_one_trace_from_the_client_to_the_upstream(
    traced: TracedStack,
) -> None:
    trace_id, client_span, traceparent = client_context()
    word = uuid.uuid4().hex
    sdk = openai.OpenAI(base_url=traced.http_url + "/v1", api_key=traced.token, max_retries=0)
    completion = sdk.chat.completions.create(
        model="aisopod/main",
        messages=[{"role": "user", "content": f"trace {word}"}],
        extra_headers={"traceparent": traceparent},
    )
    assert completion.choices[0].message.content

    spans = traced.receiver.wait_for(
        trace_id,
        lambda spans: (
            has("http-api", "POST /v1/chat/completions", "server")(spans)
            # auth.verify too: the stack's first request (the gate caches its answer).
            and has("auth", "aisopod.auth.verify", "server")(spans)
            and has("runtime", "agent", "server")(spans)
            and any(s.service == "runtime" and s.kind == "client" for s in spans)
        ),
    )
    # The edge: Traefik passes the client's traceparent on (docs/tracing.md), so
    # http-api's span is the child of the client's.
    edge = one(spans, "http-api", "POST /v1/chat/completions", "server")
    assert edge.parent_span_id == client_span
    assert edge.attributes["http.response.status_code"] == 200
    request_id = edge.attributes["aisopod.request_id"]
    # The gate's auth check and the runtime's run are its children. (ratelimit's edge
    # decision is answered from its NATS reader, without a span: docs/tracing.md.)
    children = {(s.service, s.name) for s in spans if s.parent_span_id == edge.span_id}
    assert ("auth", "aisopod.auth.verify") in children
    run = one(spans, "runtime", "agent", "server")
    assert run.parent_span_id == edge.span_id
    # The model call: a client span of the runtime under the run, whose context reached
    # the fake upstream as its traceparent.
    calls = model_call_spans(spans, run)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.name == "chat fake-small"
    assert call.attributes["gen_ai.request.model"] == "fake-small"
    assert call.attributes["aisopod.provider"] == "fake"
    received = upstream_traceparent(traced.fake, word)
    assert received.split("-")[1:3] == [trace_id, call.span_id]

    # The log lines of the request carry its trace and request id, in every service.
    http_line = next(
        r for r in log_lines(traced.state_dir, "http-api", trace_id) if r.get("kind") == "http"
    )
    assert http_line["requestId"] == request_id
    assert http_line["spanId"] == edge.span_id
    runtime_lines = log_lines(traced.state_dir, "runtime", trace_id)
    rpc_line = next(r for r in runtime_lines if r.get("method") == "agent")
    assert rpc_line["requestId"] == request_id and rpc_line["traceId"] == trace_id


async def _traced_ws_turn(traced: TracedStack, traceparent: str, word: str) -> dict[str, Any]:
    async with await WsClient.connect(traced.ws_url, token=traced.token) as ws:
        frame = {
            "jsonrpc": "2.0",
            "id": "traced-1",
            "method": "chat.send",
            "params": {"sessionKey": f"trace-{word[:8]}", "message": f"ws {word}"},
            "traceparent": traceparent,
        }
        await ws.send_raw(orjson.dumps(frame))
        reply = await ws.recv_raw()
        assert reply.get("id") == "traced-1" and "result" in reply, reply
        run_id = reply["result"]["runId"]
        done = await ws.call("agent.wait", {"runId": run_id, "timeoutMs": 20_000}, timeout=30)
        assert done["status"] == "ok", done
        return dict(ws.hello)


def test_a_websocket_request_with_its_own_traceparent_is_one_trace(traced: TracedStack) -> None:
    trace_id, client_span, traceparent = client_context()
    word = uuid.uuid4().hex
    asyncio.run(_traced_ws_turn(traced, traceparent, word))

    spans = traced.receiver.wait_for(
        trace_id,
        lambda spans: (
            has("ws-gateway", "chat.send", "server")(spans)
            and has("runtime", "chat.send", "server")(spans)
            and any(s.service == "runtime" and s.kind == "client" for s in spans)
        ),
    )
    edge = one(spans, "ws-gateway", "chat.send", "server")
    assert edge.parent_span_id == client_span
    assert edge.attributes["rpc.method"] == "chat.send"
    owner = one(spans, "runtime", "chat.send", "server")
    assert owner.parent_span_id == edge.span_id
    calls = model_call_spans(spans, owner)
    assert len(calls) == 1, calls
    received = upstream_traceparent(traced.fake, word)
    assert received.split("-")[1:3] == [trace_id, calls[0].span_id]
    # ws-gateway's line for the request and the runtime's share its request id and trace.
    gateway_line = next(
        r for r in log_lines(traced.state_dir, "ws-gateway", trace_id) if r.get("kind") == "ws"
    )
    assert gateway_line["requestId"] == edge.attributes["aisopod.request_id"]
    owner_line = next(
        r
        for r in log_lines(traced.state_dir, "runtime", trace_id)
        if r.get("kind") == "rpc" and r.get("method") == "chat.send"
    )
    assert owner_line["requestId"] == gateway_line["requestId"]
    assert owner_line["spanId"] == owner.span_id


async def _openclaw_call(url: str, token: str, traceparent: str) -> dict[str, Any]:
    async with ws_connect(url, compression=None, ping_interval=None) as ws:
        challenge = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert challenge["event"] == "connect.challenge"
        connect = {
            "minProtocol": 4,
            "maxProtocol": 4,
            "client": {"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli"},
            "role": "operator",
            "scopes": ["operator.admin"],
            "auth": {"token": token},
        }
        await ws.send(
            orjson.dumps({"type": "req", "id": "c", "method": "connect", "params": connect})
        )
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello.get("ok") is True, hello
        request = {
            "type": "req",
            "id": "traced",
            # A read only the owner answers (sessions.list is answered at the edge).
            "method": "chat.history",
            "params": {"sessionKey": "agent:main:main", "limit": 1},
            "traceparent": traceparent,
        }
        await ws.send(orjson.dumps(request))
        while True:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("type") == "res" and frame.get("id") == "traced":
                return dict(frame)


def test_an_openclaw_frame_carries_its_traceparent(traced: TracedStack) -> None:
    trace_id, client_span, traceparent = client_context()
    reply = asyncio.run(_openclaw_call(traced.openclaw_url, traced.token, traceparent))
    assert reply["ok"] is True, reply
    spans = traced.receiver.wait_for(
        trace_id,
        lambda spans: (
            has("ws-gateway", "chat.history", "server")(spans)
            and has("runtime", "chat.history", "server")(spans)
        ),
    )
    edge = one(spans, "ws-gateway", "chat.history", "server")
    assert edge.parent_span_id == client_span
    assert edge.attributes["aisopod.wire"] == "openclaw"
    owner = one(spans, "runtime", "chat.history", "server")
    assert owner.parent_span_id == edge.span_id


async def _owner_read_with(traced: TracedStack, traceparent: Any) -> str:
    """One `sessions.preview` frame (a read only the owner answers) carrying
    `traceparent`; the connection's id."""
    async with await WsClient.connect(traced.ws_url, token=traced.token) as ws:
        frame = {"id": "odd", "method": "sessions.preview", "params": {"keys": ["agent:main:main"]}}
        await ws.send_raw(orjson.dumps(frame | {"traceparent": traceparent}))
        reply = await ws.recv_raw()
        assert reply.get("id") == "odd" and "result" in reply, reply
        return str(ws.hello["server"]["connId"])


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # an all-zero trace id
        "00-abc-def-01",
        "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",  # the forbidden version
        42,
    ],
)
def test_a_malformed_traceparent_is_ignored_and_a_new_trace_starts(
    traced: TracedStack, traceparent: Any
) -> None:
    conn_id = asyncio.run(_owner_read_with(traced, traceparent))

    def ours(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [
            s
            for s in spans
            if s.service == "ws-gateway" and s.attributes.get("aisopod.conn_id") == conn_id
        ]

    found = traced.receiver.wait_any(ours)
    assert len(found) == 1, found
    edge = found[0]
    assert edge.parent_span_id == "" and edge.trace_id != "0" * 32
    spans = traced.receiver.wait_for(edge.trace_id, has("runtime", "sessions.preview", "server"))
    owner = one(spans, "runtime", "sessions.preview", "server")
    assert owner.parent_span_id == edge.span_id
