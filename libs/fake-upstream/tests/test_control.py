"""Programming behaviours (`/_control`, `x-fake-*` headers) and reading back what happened."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from aisopod_fake_upstream import FakeUpstream


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "fake-small", "messages": [{"role": "user", "content": content}], **extra}


def test_programmed_rule_applies_times_then_expires(
    fake: FakeUpstream, client: openai.OpenAI, words: str
) -> None:
    fake.program(status=503, times=2)
    messages = [{"role": "user", "content": words}]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake-small", messages=messages)
    completion = client.chat.completions.create(model="fake-small", messages=messages)
    assert completion.choices[0].message.content == f"echo: {words}"


def test_programmed_rule_with_match_only_hits_matching_messages(
    fake: FakeUpstream, http: httpx.Client, words: str
) -> None:
    fake.program(status=429, match=words)
    assert http.post("/v1/chat/completions", json=chat("something else")).status_code == 200
    assert http.post("/v1/chat/completions", json=chat(f"say {words}")).status_code == 429
    rules = http.get("/_control").json()["rules"]
    assert rules == [{"status": 429, "match": words, "remaining": None}]
    fake.reset()
    assert http.post("/v1/chat/completions", json=chat(f"say {words}")).status_code == 200


def test_bad_control_rule_is_a_400(http: httpx.Client) -> None:
    response = http.post("/_control", json={"status": 200})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["message"]


def test_headers_program_one_request(http: httpx.Client, words: str) -> None:
    response = http.post(
        "/v1/chat/completions",
        json=chat(words),
        headers={"x-fake-words": "5", "x-fake-delay-ms": "50"},
    )
    assert response.json()["choices"][0]["message"]["content"] == f"echo: {words} echo:"
    bad = http.post("/v1/chat/completions", json=chat(words), headers={"x-fake-speed": "1"})
    assert bad.status_code == 400
    assert "x-fake-* header" in bad.json()["error"]["message"]


def test_directive_beats_header_beats_rule(
    fake: FakeUpstream, http: httpx.Client, words: str
) -> None:
    fake.program(status=500, words=2)
    response = http.post(
        "/v1/chat/completions",
        json=chat(f"{words} [[fake:status=429]]"),
        headers={"x-fake-status": "503"},
    )
    assert response.status_code == 429
    fake.program(status=500, words=2)
    only_header = http.post(
        "/v1/chat/completions", json=chat(words), headers={"x-fake-status": "503"}
    )
    assert only_header.status_code == 503


def test_requests_are_recorded_with_headers_and_cleared(
    fake: FakeUpstream, http: httpx.Client, words: str
) -> None:
    fake.clear_requests()
    http.post("/v1/chat/completions", json=chat(words), headers={"x-trace": "t1"})
    http.post("/v1/chat/completions", json=chat(f"{words} [[fake:status=500]]"))
    log = fake.request_log()
    assert [entry["body"]["messages"][0]["content"] for entry in log] == [
        words,
        f"{words} [[fake:status=500]]",
    ]
    assert log[0]["headers"]["x-trace"] == "t1"
    assert log[0]["path"] == "/v1/chat/completions"
    fake.clear_requests()
    assert fake.requests == []


def test_recording_is_a_bounded_ring_buffer() -> None:
    with FakeUpstream(max_recorded=3) as small:
        with httpx.Client(base_url=small.base_url, trust_env=False) as http:
            for index in range(5):
                http.post("/chat/completions", json=chat(f"n{index}"))
        assert [body["messages"][0]["content"] for body in small.requests] == ["n2", "n3", "n4"]


def test_strict_models_refuses_unknown_model() -> None:
    with (
        FakeUpstream(models=("only-one",), strict_models=True) as strict,
        openai.OpenAI(base_url=strict.base_url, api_key="k", max_retries=0) as sdk,
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.chat.completions.create(
                model="fake-small", messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.body["code"] == "model_not_found"  # type: ignore[index]
        ok = sdk.chat.completions.create(
            model="only-one", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.model == "only-one"


def test_client_disconnect_stops_the_stream(fake: FakeUpstream, http: httpx.Client) -> None:
    before = http.get("/_stats").json()["client_disconnects"]
    body = chat("[[fake:chunk_delay_ms=50 words=200]]", stream=True)
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        assert http.get("/_stats").json()["active_responses"] >= 1
    # Leaving the block closes the stream's connection; the fake must notice and stop.
    deadline = time.monotonic() + 30
    while True:
        stats = http.get("/_stats").json()
        if stats["client_disconnects"] > before and stats["active_responses"] == 0:
            break
        assert time.monotonic() < deadline, stats
        time.sleep(0.01)


def test_the_usage_each_answer_reported_is_recorded(
    fake: FakeUpstream, http: httpx.Client, words: str
) -> None:
    fake.clear_requests()
    http.post("/v1/chat/completions", json=chat(words))
    http.post("/v1/chat/completions", json=chat(f"{words} [[fake:cached_tokens=2]]"))
    http.post("/v1/chat/completions", json=chat(f"{words} [[fake:status=500]]"))
    streamed = {**chat(words), "stream": True}
    http.post("/v1/chat/completions", json=streamed)
    answered = http.post(
        "/v1/chat/completions",
        json={**streamed, "stream_options": {"include_usage": True}},
        headers={"x-fake-cached-tokens": "99", "x-fake-cache-write-tokens": "99"},
    )
    log = fake.request_log()
    plain = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert log[0]["usage"] == plain
    # The directive is a word of the prompt too.
    assert log[1]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 4,
        "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 2, "cache_write_tokens": 0},
    }
    assert log[2]["usage"] is None  # failed: nothing reported
    assert log[3]["usage"] is None  # a stream without include_usage reports none
    # Cache counts are parts of the prompt: asked for more, they are cut to what there is.
    assert log[4]["usage"]["prompt_tokens_details"] == {"cached_tokens": 3, "cache_write_tokens": 0}
    assert '"cached_tokens":3' in answered.text
