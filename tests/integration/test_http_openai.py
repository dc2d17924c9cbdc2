"""http-api's OpenAI-compatible surface through the real stack (Traefik → ratelimit → auth
→ http-api → runtime / fake upstream), with the official `openai` SDK unchanged."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from pathlib import Path

import httpx
import openai
import pytest

pytestmark = pytest.mark.integration

_SCHEMA = Path(__file__).resolve().parents[2] / "services/http-api/tests/openresponses_schema.py"
_spec = importlib.util.spec_from_file_location("openresponses_schema", _SCHEMA)
assert _spec is not None and _spec.loader is not None
openresponses = importlib.util.module_from_spec(_spec)
sys.modules["openresponses_schema"] = openresponses  # pydantic resolves its annotations here
_spec.loader.exec_module(openresponses)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def sdk(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.http_url + "/v1", api_key=stack.admin_token, max_retries=0)


def test_agent_mode_non_stream(sdk: openai.OpenAI) -> None:
    word = uuid.uuid4().hex
    completion = sdk.chat.completions.create(
        model="aisopod/main", messages=[{"role": "user", "content": f"hello {word}"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == "aisopod/main"
    assert completion.choices[0].message.content == f"echo: hello {word}"  # the echo provider
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_agent_mode_stream_keeps_a_user_session(sdk: openai.OpenAI) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    word = uuid.uuid4().hex
    stream = sdk.chat.completions.create(
        model="aisopod/main",
        messages=[{"role": "user", "content": f"stream {word}"}],
        stream=True,
        stream_options={"include_usage": True},
        user=user,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: stream {word}"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_proxy_mode_non_stream_and_stream(sdk: openai.OpenAI, fake_upstream) -> None:
    word = uuid.uuid4().hex
    completion = sdk.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": f"proxy {word}"}]
    )
    assert completion.choices[0].message.content == f"echo: proxy {word}"
    assert completion.model == "fake-small"  # the provider's own answer, untouched
    assert fake_upstream.requests[-1]["model"] == "fake-small"
    stream = sdk.chat.completions.create(
        model="fake/fake-small",
        messages=[{"role": "user", "content": f"streamed {word}"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"echo: streamed {word}"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_proxy_mode_tool_calls(sdk: openai.OpenAI) -> None:
    prompt = 'weather? [[tool:get_weather {"city":"Oslo"}]]'
    completion = sdk.chat.completions.create(
        model="fake/fake-small", messages=[{"role": "user", "content": prompt}], tools=TOOLS
    )
    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    stream = sdk.chat.completions.create(
        model="fake/fake-small",
        messages=[{"role": "user", "content": prompt}],
        tools=TOOLS,
        stream=True,
    )
    arguments = ""
    for chunk in stream:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += delta.function.arguments or ""
    assert json.loads(arguments) == {"city": "Oslo"}


def test_models_list(sdk: openai.OpenAI) -> None:
    ids = [model.id for model in sdk.models.list()]
    assert "aisopod/main" in ids
    assert "fake/fake-small" in ids and "fake/fake-large" in ids


def test_models_retrieve_every_listed_id(sdk: openai.OpenAI) -> None:
    """The SDK percent-encodes the `/` of `aisopod/main` (`/v1/models/aisopod%2Fmain`)."""
    ids = [model.id for model in sdk.models.list()]
    assert all("/" in model_id for model_id in ids)
    for model_id in ids:
        assert sdk.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.models.retrieve("nowhere/nothing")
    assert unknown.value.body["code"] == "model_not_found"


def test_refused_encoded_paths_answer_in_the_api_shape(stack) -> None:
    """An encoded slash outside GET /v1/models/{id} (or any other refused encoding) is a
    400 from the edge, in the OpenAI error shape under /v1 and with a request id."""
    headers = {"authorization": f"Bearer {stack.admin_token}"}
    for method, path in (
        ("POST", "/v1/chat%2Fcompletions"),
        ("GET", "/v1/models/aisopod%5Cmain"),
        ("GET", "/v1/models%2Faisopod"),
        ("GET", "/v1/models/aisopod%3Fmain"),
        ("GET", "/v1/models/aisopod%23main"),
        ("GET", "/v1/models/aisopod%252Fmain"),
        ("GET", "/v1/models/aisopod%25main"),
        ("GET", "/v1/models/aisopod%3Bmain"),
        ("GET", "/v1/models/aisopod%00main"),
    ):
        reply = httpx.request(method, stack.http_url + path, headers=headers, timeout=10)
        assert reply.status_code == 400, (path, reply.text)
        assert reply.headers.get("content-type") == "application/json", (path, reply.text)
        assert reply.json()["error"]["code"] == "invalid_path"
        assert reply.headers["x-request-id"]
    # A literal `;` is an ordinary path character: the service answers (no such model).
    reply = httpx.get(stack.http_url + "/v1/models/a;b", headers=headers, timeout=10)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
    reply = httpx.get(stack.http_url + "/canvas/a%2Fb.html", headers=headers, timeout=10)
    assert reply.status_code == 400 and reply.json()["ok"] is False
    reply = httpx.get(stack.http_url + "/assets%2Fx.js", timeout=10)  # the UI: refused too
    assert reply.status_code == 400


def test_upstream_failure_is_an_openai_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        sdk.chat.completions.create(
            model="fake/fake-small",
            messages=[{"role": "user", "content": "fail [[fake:status=500]]"}],
        )
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "upstream_error"
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.chat.completions.create(
            model="nowhere/nothing", messages=[{"role": "user", "content": "x"}]
        )
    assert unknown.value.body["code"] == "model_not_found"


def test_responses_create(sdk: openai.OpenAI, stack) -> None:
    word = uuid.uuid4().hex
    raw = sdk.responses.with_raw_response.create(model="aisopod/main", input=f"hi {word}")
    openresponses.ResponseResource.model_validate(raw.http_response.json())
    response = raw.parse()
    assert response.status == "completed" and response.output_text == f"echo: hi {word}"
    kinds = []
    for event in sdk.responses.create(model="fake/fake-small", input=f"s {word}", stream=True):
        kinds.append(event.type)
        if event.type == "response.completed":
            assert event.response.output_text == f"echo: s {word}"
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    body = {"model": "aisopod/main", "input": f"raw {word}", "stream": True}
    headers = {"authorization": f"Bearer {stack.admin_token}"}
    reply = httpx.post(f"{stack.http_url}/v1/responses", json=body, headers=headers, timeout=30)
    for block in filter(None, reply.text.split("\n\n")):
        data = json.loads(block.split("\n", 1)[1].removeprefix("data: "))
        openresponses.StreamingEvent.validate_python(data)


def test_status_needs_a_token(stack) -> None:
    anonymous = httpx.get(f"{stack.http_url}/status", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].lower().startswith("bearer")
    ok = httpx.get(
        f"{stack.http_url}/status",
        headers={"authorization": f"Bearer {stack.admin_token}"},
        timeout=10,
    )
    assert ok.status_code == 200 and "services" in ok.json()
    assert ok.headers["x-request-id"]
