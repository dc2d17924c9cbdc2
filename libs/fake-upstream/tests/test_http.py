"""HTTP-level checks with httpx and raw sockets: SSE framing, keep-alive, error shapes."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import orjson
import pytest

from aisopod_fake_upstream import FakeUpstream
from aisopod_fake_upstream.http11 import MAX_BODY


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-small", "messages": [{"role": "user", "content": content}], **extra}


def test_sse_framing(http: httpx.Client, words: str) -> None:
    body = chat(words, stream=True, stream_options={"include_usage": True})
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["x-request-id"].startswith("req_")
        raw = response.read()
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    for event in events[:-1]:
        assert event.startswith(b"data: ")
        assert b"\n" not in event
    payloads = [orjson.loads(event[6:]) for event in events[:-2]]
    assert {p["id"] for p in payloads} == {payloads[0]["id"]}
    assert all(p["object"] == "chat.completion.chunk" for p in payloads)
    assert payloads[-1]["usage"]["total_tokens"] == 7


def test_keep_alive_serves_many_requests_on_one_connection(fake: FakeUpstream) -> None:
    with socket.create_connection(
        ("127.0.0.1", int(fake.root_url.rsplit(":", 1)[1])), timeout=5
    ) as sock:
        body = orjson.dumps(chat("hi"))
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        # Three pipelined requests in one write; three responses come back in order.
        sock.sendall(request * 2 + b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 200 OK") < 3 or not received.endswith(b'{"ok":true}'):
            chunk = sock.recv(65536)
            assert chunk, "server closed a keep-alive connection"
            received += chunk
    assert received.count(b"echo: hi") == 2


def test_pipelined_request_waits_behind_a_slow_stream(fake: FakeUpstream) -> None:
    port = int(fake.root_url.rsplit(":", 1)[1])
    slow = orjson.dumps(chat("[[fake:chunk_delay_ms=20 words=3]]", stream=True))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n" % (len(slow), slow)
        )
        received = b""
        while not received.endswith(b'{"ok":true}'):
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
    assert received.index(b"data: [DONE]") < received.index(b'{"ok":true}')


def test_connection_close_is_honoured(http: httpx.Client) -> None:
    response = http.get("/health", headers={"connection": "close"})
    assert response.json() == {"ok": True}
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (b"{not json", None, "could not parse the JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), "model", "Missing"),
        (orjson.dumps({"model": "m"}), "messages", "Missing"),
        (orjson.dumps({"model": "m", "messages": []}), "messages", "Invalid value"),
        (orjson.dumps({"model": "m", "messages": [{"role": "robot"}]}), "messages.[0].role", ""),
        (orjson.dumps({"model": "m", "messages": [{"role": "tool", "content": "x"}]}), None, ""),
        (orjson.dumps(chat("[[fake:bogus=1]]")), None, "unknown [[fake:...]] directive key"),
    ],
)
def test_bad_requests_are_openai_shaped_400s(
    http: httpx.Client, body: bytes, param: str | None, message: str
) -> None:
    response = http.post("/v1/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]
    if param is not None:
        assert error["param"] == param


def test_unknown_path_and_wrong_method(http: httpx.Client) -> None:
    missing = http.get("/v1/engines")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_url"
    wrong = http.get("/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["type"] == "invalid_request_error"


def test_retry_after_header(http: httpx.Client, words: str) -> None:
    response = http.post(
        "/v1/chat/completions", json=chat(f"{words} [[fake:status=429 retry_after=2]]")
    )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_oversized_body_is_413_and_connection_closed(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


def test_malformed_http_is_400(fake: FakeUpstream) -> None:
    port = int(fake.root_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT AN HTTP REQUEST\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")


def test_chunked_request_body_is_accepted(http: httpx.Client, words: str) -> None:
    body = orjson.dumps(chat(words))
    response = http.post(
        "/v1/chat/completions", content=iter([body[:10], body[10:]])
    )  # an iterator body goes out with transfer-encoding: chunked
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == f"echo: {words}"


def test_cut_stream_is_an_incomplete_chunked_body(http: httpx.Client, words: str) -> None:
    body = chat(f"{words} [[fake:cut_after=2]]", stream=True)
    events: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        events.extend(line for line in response.iter_lines() if line)
    assert len(events) == 2
    assert '"content":"echo:"' in events[1]


def test_cut_after_zero_sends_only_the_headers(http: httpx.Client) -> None:
    body = chat("[[fake:cut_after=0]]", stream=True)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        response.read()
