"""`/v1/responses` with the official SDK, every object and event checked against the
Open Responses shapes (openresponses_schema), agent mode and provider mode."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
from openresponses_schema import ResponseResource, StreamingEvent

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def sdk(served, admin) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=served.url + "/v1", api_key="unused", default_headers=admin, max_retries=0
    )


async def _create(sdk: openai.AsyncOpenAI, **params: object):  # type: ignore[no-untyped-def]
    """The SDK's parsed response, after checking the raw JSON against the Open Responses shapes."""
    raw = await sdk.responses.with_raw_response.create(**params)  # type: ignore[call-overload]
    ResponseResource.model_validate(raw.http_response.json())
    return raw.parse()


async def _raw_events(served, admin, body: dict) -> list[dict]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.post("/v1/responses", json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        StreamingEvent.validate_python(payload)
        events.append(payload)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


async def test_agent_non_stream(sdk: openai.AsyncOpenAI) -> None:
    word = uuid.uuid4().hex
    response = await _create(sdk, model="aisopod/main", input=f"hi {word}")
    assert response.status == "completed"
    assert response.output_text == f"echo: hi {word}"
    assert response.id.startswith("resp_") and response.usage.output_tokens == 3


async def test_short_message_form_without_type(served, admin) -> None:
    """OpenAI's EasyInputMessage (`{role, content}`, no `type`), as the Vercel AI SDK sends."""
    word = uuid.uuid4().hex
    body = {"model": "aisopod/main", "input": [{"role": "user", "content": f"short {word}"}]}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.post("/v1/responses", json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert ResponseResource.model_validate(response.json()).status == "completed"
    assert response.json()["output"][0]["content"][0]["text"] == f"echo: short {word}"


async def test_invalid_input_names_the_real_error(served, admin) -> None:
    body = {"model": "aisopod/main", "input": [{"role": "usr", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        response = await client.post("/v1/responses", json=body, headers=admin)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "input.0.role"
    assert error["message"].startswith("invalid params: input.0.role: Input should be 'user'")


async def test_agent_stream_sequence(served, admin) -> None:
    events = await _raw_events(
        served, admin, {"model": "aisopod/main", "input": "one two", "stream": True}
    )
    kinds = [e["type"] for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "echo: one two"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == deltas


async def test_sdk_stream(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(model="aisopod/main", input="streamed", stream=True)
    kinds = []
    async for event in stream:
        kinds.append(event.type)
        if event.type == "response.completed":
            assert event.response.output_text == "echo: streamed"
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


async def test_provider_model_with_instructions_and_items(sdk: openai.AsyncOpenAI, served) -> None:
    word = uuid.uuid4().hex
    response = await _create(
        sdk,
        model="fake/fake-small",
        instructions="be brief",
        input=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": word}]}
        ],
        max_output_tokens=64,
    )
    assert response.output_text == f"echo: {word}"
    sent = served.fake.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 64 and sent["model"] == "fake-small"


async def test_function_tools_round_trip(sdk: openai.AsyncOpenAI, served, admin) -> None:
    response = await _create(
        sdk,
        model="fake/fake-small",
        input='weather? [[tool:get_weather {"city":"Oslo"}]]',
        tools=TOOLS,
    )
    assert response.tools[0].name == "get_weather" and response.tools[0].strict is None
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    follow = await _create(
        sdk,
        model="fake/fake-small",
        input=[
            {"type": "message", "role": "user", "content": "weather? [[tool:get_weather]]"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=TOOLS,
    )
    assert follow.output_text == "tool get_weather returned: sunny"
    events = await _raw_events(
        served,
        admin,
        {
            "model": "fake/fake-small",
            "input": '[[tool:get_weather {"city":"Bergen"}]]',
            "tools": TOOLS,
            "stream": True,
        },
    )
    args = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    assert json.loads(args) == {"city": "Bergen"}
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done and done[0]["arguments"] == args


async def test_errors(sdk: openai.AsyncOpenAI, served, admin) -> None:
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model="nope/none", input="x")
    with pytest.raises(openai.BadRequestError):
        await sdk.responses.create(model="aisopod/main", input="x", tools=TOOLS)
    with pytest.raises(openai.NotFoundError) as unknown:  # never stored
        await sdk.responses.create(model="aisopod/main", input="x", previous_response_id="resp_1")
    assert unknown.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.APIStatusError) as failed:
        await sdk.responses.create(model="fake/fake-small", input="[[fake:status=500]]")
    assert failed.value.status_code == 502
    events = await _raw_events(
        served, admin, {"model": "aisopod/main", "input": "[[fail]]", "stream": True}
    )
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "the model exploded"


async def test_length_cut_is_incomplete(sdk: openai.AsyncOpenAI) -> None:
    response = await _create(
        sdk,
        model="fake/fake-small",
        input="a b c d e f g h i j k l m n o p q r s t",
        max_output_tokens=16,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
