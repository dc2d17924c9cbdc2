"""The proxy fast path against the fake upstream: bytes through, errors mapped, cancels."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson
import pytest


def _chat(text: str, model: str = "fake/fake-small", **extra: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def test_non_stream_is_the_upstream_answer(client: httpx.AsyncClient, served, admin) -> None:
    word = uuid.uuid4().hex
    response = await client.post("/v1/chat/completions", json=_chat(f"hi {word}"), headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == f"echo: hi {word}"
    assert body["model"] == "fake-small"  # the provider's own id went upstream
    assert body["usage"]["completion_tokens"] == 3
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"
    sent = served.fake.requests[-1]
    assert sent["model"] == "fake-small"


async def test_stream_passes_sse_bytes_through(client: httpx.AsyncClient, admin) -> None:
    word = uuid.uuid4().hex
    payload = _chat(f"stream {word}", stream=True, stream_options={"include_usage": True})
    async with client.stream(
        "POST", "/v1/chat/completions", json=payload, headers=admin
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    chunks = [orjson.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == f"echo: stream {word}"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_bare_model_id_of_one_provider(client: httpx.AsyncClient, admin) -> None:
    response = await client.post(
        "/v1/chat/completions", json=_chat("bare", model="fake-small"), headers=admin
    )
    assert response.status_code == 200
    ambiguous = await client.post(
        "/v1/chat/completions", json=_chat("x", model="fake-large"), headers=admin
    )
    assert ambiguous.status_code == 400
    error = ambiguous.json()["error"]
    assert error["code"] == "model_ambiguous" and "fake/fake-large" in error["message"]


async def test_unknown_model_is_404_openai_shaped(client: httpx.AsyncClient, admin) -> None:
    response = await client.post(
        "/v1/chat/completions", json=_chat("x", model="nope/nothing"), headers=admin
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert response.json()["error"]["type"] == "not_found_error"


async def test_auth_and_scope(client: httpx.AsyncClient, reader) -> None:
    anonymous = await client.post("/v1/chat/completions", json=_chat("x"))
    assert anonymous.status_code == 401
    # auth's refusal in OpenAI's shape, as the SDKs read it.
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="aisopod"'
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    reader = await client.post("/v1/chat/completions", json=_chat("x"), headers=reader)
    assert reader.status_code == 403


async def test_bad_bodies(client: httpx.AsyncClient, admin) -> None:
    not_json = await client.post("/v1/chat/completions", content=b"{nope", headers=admin)
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    no_messages = await client.post(
        "/v1/chat/completions", json={"model": "fake/fake-small", "messages": []}, headers=admin
    )
    assert no_messages.status_code == 400
    big = await client.post("/v1/chat/completions", json=_chat("x" * (1024 * 1024)), headers=admin)
    assert big.status_code == 413
    wrong_method = await client.get("/v1/chat/completions", headers=admin)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


async def test_upstream_failures_are_mapped(client: httpx.AsyncClient, admin) -> None:
    failed = await client.post(
        "/v1/chat/completions", json=_chat("boom [[fake:status=500]]"), headers=admin
    )
    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "upstream_error"
    limited = await client.post(
        "/v1/chat/completions",
        json=_chat("slow down [[fake:status=429 retry_after=7]]"),
        headers=admin,
    )
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    refused = await client.post(
        "/v1/chat/completions", json=_chat("x", model="wrongkey/w"), headers=admin
    )
    assert refused.status_code == 502  # our provider key, not the client's credentials
    down = await client.post("/v1/chat/completions", json=_chat("x", model="down/d"), headers=admin)
    assert down.status_code == 502
    invalid = await client.post(
        "/v1/chat/completions",
        json={"model": "fake/fake-small", "messages": [{"role": "wizard", "content": "x"}]},
        headers=admin,
    )
    assert invalid.status_code == 400  # the provider's own 400 passes through
    assert invalid.json()["error"]["param"]


async def test_retry_then_success(client: httpx.AsyncClient, admin) -> None:
    word = uuid.uuid4().hex
    response = await client.post(
        "/v1/chat/completions",
        json=_chat(f"flaky {word} [[fake:fail_times=1 status=503]]"),
        headers=admin,
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == f"echo: flaky {word}"


async def test_timeout_is_504(client: httpx.AsyncClient, admin) -> None:
    response = await client.post(
        "/v1/chat/completions", json=_chat("wait [[fake:delay_ms=4000]]"), headers=admin
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout"


async def test_client_disconnect_cancels_upstream(served, admin) -> None:
    payload = _chat("long [[fake:chunk_delay_ms=100 words=200]]", stream=True)
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        stats = (await client.get(f"{served.fake.root_url}/_stats")).json()
        before = stats["client_disconnects"]
        async with client.stream(
            "POST", "/v1/chat/completions", json=payload, headers=admin
        ) as response:
            async for _ in response.aiter_raw():
                break  # first bytes seen: go away
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = (await client.get(f"{served.fake.root_url}/_stats")).json()
            if stats["client_disconnects"] > before:
                break
            await asyncio.sleep(0.05)
    assert stats["client_disconnects"] > before


async def test_stream_cut_by_the_provider_is_an_error_event(served, admin) -> None:
    import openai

    sdk = openai.AsyncOpenAI(
        base_url=served.url + "/v1", api_key="x", default_headers=admin, max_retries=0
    )
    stream = await sdk.chat.completions.create(
        model="fake/fake-small",
        messages=[{"role": "user", "content": "a b c d e f [[fake:cut_after=3]]"}],
        stream=True,
    )
    seen = []
    with pytest.raises(openai.APIError, match="broke the stream"):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 3  # what the provider sent before the cut arrived untouched
