"""Agent mode's one rule for request options, through the real stack with the `openai` SDK:
honoured (`response_format` / `text.format`: an instruction and a check of the final JSON),
refused with 400 (`n` > 1, `tools`), or named in `X-Aisopod-Ignored-Params`."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import openai
import pytest

from tests.integration.runtime_support import (  # noqa: F401 (fixture)
    RuntimeClient,
    rt_fixture,
)

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "properties": {"echo": {"type": "string"}},
    "required": ["echo"],
}


@pytest.fixture
async def json_agent(rt: RuntimeClient) -> AsyncIterator[str]:
    """An agent on the fake provider (which answers `{"echo": …}` when asked to)."""
    agent_id = f"json{uuid.uuid4().hex[:6]}"
    await rt.call("agents.create", {"id": agent_id, "name": "Json", "model": "fake/fake-small"})
    yield agent_id
    await rt.call("agents.delete", {"agentId": agent_id})


async def test_chat_response_format_is_an_instruction_and_a_check(
    async_sdk: openai.AsyncOpenAI, json_agent: str
) -> None:
    model = f"aisopod/{json_agent}"
    completion = await async_sdk.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "give json [[fake:json_reply]]"}],
        response_format={"type": "json_schema", "json_schema": {"name": "e", "schema": SCHEMA}},
    )
    answer = json.loads(completion.choices[0].message.content or "")
    assert answer["echo"].startswith("give json")
    assert "JSON schema" in answer["echo"]  # the instruction reached the agent's model
    # The echo provider's `echo: …` is no JSON object: refused, not passed off as one.
    with pytest.raises(openai.APIStatusError) as failed:
        await async_sdk.chat.completions.create(
            model="aisopod/main",
            messages=[{"role": "user", "content": "not json"}],
            response_format={"type": "json_object"},
        )
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "invalid_output"
    stream = await async_sdk.chat.completions.create(
        model="aisopod/main",
        messages=[{"role": "user", "content": "not json either"}],
        response_format={"type": "json_object"},
        stream=True,
    )
    with pytest.raises(openai.APIError, match="not the JSON object"):
        async for _ in stream:
            pass


async def test_responses_text_format_is_checked_the_same_way(
    async_sdk: openai.AsyncOpenAI, json_agent: str
) -> None:
    text = {"format": {"type": "json_schema", "name": "e", "schema": SCHEMA}}
    response = await async_sdk.responses.create(
        model=f"aisopod/{json_agent}", input="json please [[fake:json_reply]]", text=text
    )
    assert json.loads(response.output_text)["echo"].startswith("json please")
    assert response.text.format.type == "json_schema"
    wrong = {
        "format": {"type": "json_schema", "name": "e", "schema": {**SCHEMA, "required": ["x"]}}
    }
    with pytest.raises(openai.APIStatusError) as failed:
        await async_sdk.responses.create(
            model=f"aisopod/{json_agent}", input="j [[fake:json_reply]]", text=wrong
        )
    assert failed.value.status_code == 502 and "JSON schema" in failed.value.message


async def test_what_an_agent_cannot_honour_is_a_400_on_both_endpoints(
    async_sdk: openai.AsyncOpenAI,
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    messages = [{"role": "user", "content": "x"}]
    for params, param in (
        ({"n": 2}, "n"),
        ({"tools": [tool]}, "tools"),
        ({"logprobs": True}, "logprobs"),
        ({"stop": ["\n"]}, "stop"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            await async_sdk.chat.completions.create(
                model="aisopod/main", messages=messages, **params
            )
        assert refused.value.body["param"] == param
        assert refused.value.body["code"] == "unsupported_parameter"
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    with pytest.raises(openai.BadRequestError) as refused:
        await async_sdk.responses.create(model="aisopod/main", input="x", tools=tools)
    assert refused.value.body["param"] == "tools"
    assert refused.value.body["code"] == "unsupported_parameter"


async def test_sampling_hints_are_named_as_not_applied(async_sdk: openai.AsyncOpenAI) -> None:
    raw = await async_sdk.chat.completions.with_raw_response.create(
        model="aisopod/main",
        messages=[{"role": "user", "content": "hint"}],
        temperature=0.2,
        max_tokens=50,
    )
    assert raw.headers["x-aisopod-ignored-params"] == "temperature,max_tokens"
    assert raw.parse().choices[0].message.content == "echo: hint"
    raw = await async_sdk.responses.with_raw_response.create(
        model="aisopod/main", input="hint", temperature=0.5
    )
    assert raw.headers["x-aisopod-ignored-params"] == "temperature"
