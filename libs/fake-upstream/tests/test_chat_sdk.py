"""The official `openai` SDK as the client, the way the gateway and users call a provider."""

from __future__ import annotations

import json
import time

import openai
import pytest

from aisopod_fake_upstream import FakeUpstream

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "current time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    }
]


def test_non_stream_completion(client: openai.OpenAI, fake: FakeUpstream, words: str) -> None:
    completion = client.chat.completions.create(
        model="fake-large", messages=[{"role": "user", "content": words}]
    )
    choice = completion.choices[0]
    assert choice.message.content == f"echo: {words}"
    assert choice.finish_reason == "stop"
    assert completion.model == "fake-large"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3
    assert completion.usage.completion_tokens == 4
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": words}]


def test_stream_has_role_first_then_deltas_then_finish(client: openai.OpenAI, words: str) -> None:
    stream = client.chat.completions.create(
        model="fake-small", messages=[{"role": "user", "content": words}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(contents) == 4
    assert "".join(c or "" for c in contents) == f"echo: {words}"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_include_usage(client: openai.OpenAI, words: str) -> None:
    stream = client.chat.completions.create(
        model="fake-small",
        messages=[{"role": "user", "content": words}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (3, 4)


def test_tool_loop_end_to_end(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [
        {"role": "user", "content": 'what time is it? [[tool:get_time {"tz":"UTC"}]]'}
    ]
    first = client.chat.completions.create(model="fake-small", messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"tz": "UTC"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "12:34 UTC"})
    final = client.chat.completions.create(model="fake-small", messages=messages, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "tool get_time returned: 12:34 UTC"


def test_streamed_tool_calls_accumulate(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-small",
        messages=[{"role": "user", "content": '[[tool:get_time {"tz":"Europe/Paris"}]]'}],
        tools=TOOLS,
        stream=True,
    )
    call_id, name, arguments, finish = None, None, "", None
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            assert delta.index == 0
            call_id = delta.id or call_id
            if delta.function is not None:
                name = delta.function.name or name
                arguments += delta.function.arguments or ""
    assert call_id is not None and call_id.startswith("call_")
    assert (name, json.loads(arguments), finish) == (
        "get_time",
        {"tz": "Europe/Paris"},
        "tool_calls",
    )


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (409, openai.ConflictError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_status_directive_raises_the_sdk_exception(
    client: openai.OpenAI, status: int, exception: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exception) as caught:
        client.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": f"[[fake:status={status}]]"}]
        )
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}
    assert f"simulated {status}" in body["message"]


def test_429_with_retry_after_then_success(fake: FakeUpstream, words: str) -> None:
    content = f"{words} [[fake:fail_times=1 status=429 retry_after=0.05]]"
    with openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=2) as retrying:
        started = time.monotonic()
        completion = retrying.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": content}]
        )
        elapsed = time.monotonic() - started
    assert completion.choices[0].message.content == f"echo: {words}"
    attempts = [r for r in fake.requests if r["messages"][-1]["content"] == content]
    assert len(attempts) == 2
    assert elapsed >= 0.05


def test_fail_times_fails_exactly_n_identical_requests(client: openai.OpenAI, words: str) -> None:
    messages = [{"role": "user", "content": f"{words} [[fake:fail_times=2 status=503]]"}]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="fake-small", messages=messages)
    completion = client.chat.completions.create(model="fake-small", messages=messages)
    assert completion.choices[0].message.content == f"echo: {words}"


def test_cut_stream_raises_after_some_chunks(client: openai.OpenAI, words: str) -> None:
    stream = client.chat.completions.create(
        model="fake-small",
        messages=[{"role": "user", "content": f"{words} [[fake:cut_after=3]]"}],
        stream=True,
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "echo:", " note"]


def test_cut_non_stream_body_raises(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": "[[fake:cut_after=20]]"}]
        )


def test_dropped_connection_raises(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(
            model="fake-small", messages=[{"role": "user", "content": "[[fake:drop]]"}]
        )


def test_delay_before_first_byte(client: openai.OpenAI, words: str) -> None:
    started = time.monotonic()
    completion = client.chat.completions.create(
        model="fake-small", messages=[{"role": "user", "content": f"{words} [[fake:delay_ms=300]]"}]
    )
    assert time.monotonic() - started >= 0.3
    assert completion.choices[0].message.content == f"echo: {words}"


def test_delay_longer_than_client_timeout_is_a_timeout(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="fake-small",
            messages=[{"role": "user", "content": "[[fake:delay_ms=2000]]"}],
            timeout=0.2,
        )


def test_chunk_delay_spaces_the_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-small",
        messages=[{"role": "user", "content": "[[fake:chunk_delay_ms=40 words=3]]"}],
        stream=True,
    )
    arrivals = [time.monotonic() for _ in stream]
    # role, 3 words, finish: four gaps of at least 40 ms (minus scheduler slack).
    assert len(arrivals) == 5
    assert arrivals[-1] - arrivals[0] >= 4 * 0.04 * 0.9


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["fake-small", "fake-large"]
    assert client.models.retrieve("fake-large").owned_by == "aisopod-fake"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-nothing")


@pytest.mark.asyncio
async def test_async_client_against_async_started_fake(words: str) -> None:
    async with FakeUpstream(api_key="sk-fake-123") as secured:
        async with openai.AsyncOpenAI(
            base_url=secured.base_url, api_key="sk-fake-123", max_retries=0
        ) as sdk:
            completion = await sdk.chat.completions.create(
                model="fake-small", messages=[{"role": "user", "content": words}]
            )
            assert completion.choices[0].message.content == f"echo: {words}"
        async with openai.AsyncOpenAI(
            base_url=secured.base_url, api_key="wrong", max_retries=0
        ) as sdk:
            with pytest.raises(openai.AuthenticationError) as caught:
                await sdk.models.list()
    assert caught.value.body["code"] == "invalid_api_key"  # type: ignore[index]
