"""Chat Completions in agent mode with the official SDK; the runtime's part is the double."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import openai
import pytest


@pytest.fixture
def sdk(served, admin) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=served.url + "/v1", api_key="unused", default_headers=admin, max_retries=0
    )


async def test_non_stream(sdk: openai.AsyncOpenAI, served) -> None:
    word = uuid.uuid4().hex
    completion = await sdk.chat.completions.create(
        model="aisopod/main", messages=[{"role": "user", "content": f"hello {word}"}]
    )
    assert completion.choices[0].message.content == f"echo: hello {word}"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "aisopod/main"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    call = served.runtime.params("agent")[-1]
    assert call["agentId"] == "main" and call["message"] == f"hello {word}"
    assert call["sessionKey"].startswith("agent:main:openai:")  # fresh per request


async def test_stream_with_usage(sdk: openai.AsyncOpenAI) -> None:
    word = uuid.uuid4().hex
    stream = await sdk.chat.completions.create(
        model="aisopod/main",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": word}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: {word}"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 3


async def test_session_from_header_and_user(sdk: openai.AsyncOpenAI, served) -> None:
    await sdk.chat.completions.create(
        model="aisopod/helper",
        messages=[{"role": "user", "content": "one"}],
        extra_headers={"x-aisopod-session-key": "agent:helper:mine"},
    )
    assert served.runtime.params("agent")[-1]["sessionKey"] == "agent:helper:mine"
    await sdk.chat.completions.create(
        model="aisopod/helper", messages=[{"role": "user", "content": "two"}], user="alice"
    )
    first = served.runtime.params("agent")[-1]["sessionKey"]
    await sdk.chat.completions.create(
        model="aisopod/helper", messages=[{"role": "user", "content": "three"}], user="alice"
    )
    assert (
        served.runtime.params("agent")[-1]["sessionKey"]
        == first
        == "agent:helper:openai-user:alice"
    )


async def test_agent_header_selects_agent(sdk: openai.AsyncOpenAI, served) -> None:
    await sdk.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-aisopod-agent-id": "helper"},
    )
    assert served.runtime.params("agent")[-1]["agentId"] == "helper"


async def test_failures(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(
            model="aisopod/ghost", messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk.chat.completions.create(
            model="aisopod/main", messages=[{"role": "user", "content": "x [[fail]]"}]
        )
    assert failed.value.status_code == 502
    assert "exploded" in failed.value.message
    stream = await sdk.chat.completions.create(
        model="aisopod/main", messages=[{"role": "user", "content": "y [[fail]]"}], stream=True
    )
    with pytest.raises(openai.APIError, match="exploded"):
        async for _ in stream:
            pass
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(
            model="aisopod/main", messages=[{"role": "assistant", "content": "no user"}]
        )


async def test_disconnect_aborts_the_run(served, admin) -> None:
    body = {
        "model": "aisopod/main",
        "messages": [{"role": "user", "content": "[[slow]]"}],
        "stream": True,
    }
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=admin) as r,
    ):
        async for _ in r.aiter_raw():
            break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not served.runtime.params("chat.abort"):
        await asyncio.sleep(0.05)
    assert served.runtime.params("chat.abort")
