"""The pure layers without I/O: hook mappings, SSE, model resolution, Open Responses."""

from __future__ import annotations

import json

import pytest
from openresponses_schema import ResponseResource, StreamingEvent

from aisopod.catalogue.run_events import RunUsage
from aisopod.config.model import GatewayConfig
from aisopod.config.sections.hooks import HookMapping
from aisopod.errors import InvalidParams, NotFound
from aisopod_http_api.agentoptions import OutputFormat, chat_options
from aisopod_http_api.agentturn import Usage, message_text, usage_of
from aisopod_http_api.errors import UpstreamError
from aisopod_http_api.hookmap import HookRequest, matches, render, select
from aisopod_http_api.responses import compaction
from aisopod_http_api.responses.builder import ResponseBuilder
from aisopod_http_api.responses.convert import agent_message, chat_request
from aisopod_http_api.responses.engines import CallArgs, CallStart, Finished, TextDelta
from aisopod_http_api.responses.models import CreateResponseBody
from aisopod_http_api.sessionkeys import canonical, session_key
from aisopod_http_api.sse import SseReader, encode
from aisopod_http_api.upstream.targets import ModelTable

PUSH = HookRequest(
    "github",
    {"x-github-event": "push"},
    {"repository": {"full_name": "acme/app"}, "commits": [{"id": "abc"}], "n": 3},
)


def test_hook_matching_and_templates() -> None:
    mapping = HookMapping(
        name="gh",
        path="github",
        match={"headers.X-GitHub-Event": ["push", "tag"], "body.repository.full_name": "*"},
        template="{{ body.repository.full_name }}@{{body.commits.0.id}} "
        "({{headers.x-github-event}}, {{body.n}})",
    )
    assert matches(mapping, PUSH)
    assert render(mapping.template, PUSH) == "acme/app@abc (push, 3)"
    assert render("{{body.missing}}|{{path}}", PUSH) == "|github"
    assert json.loads(render("{{body}}", PUSH))["n"] == 3
    other = HookMapping(name="github", match={"body.n": 4})
    assert select([other, mapping], PUSH) is mapping
    assert select([other], PUSH) is None
    assert matches(HookMapping(name="x", match={"body.n": "3"}), PUSH)  # text vs number


def test_sse_reader_across_chunk_boundaries() -> None:
    stream = encode("a", {"x": 1}) + b": comment\n\ndata: one\ndata: two\n\n" + b"data: [DONE]\n\n"
    reader = SseReader()
    events = [e for i in range(0, len(stream), 7) for e in reader.feed(stream[i : i + 7])]
    assert [(e.event, e.data) for e in events] == [
        ("a", '{"x":1}'),
        (None, "one\ntwo"),
        (None, "[DONE]"),
    ]


def _table() -> ModelTable:
    return ModelTable.from_config(
        GatewayConfig.model_validate(
            {
                "models": {
                    "providers": [
                        {"id": "echo", "kind": "echo", "models": [{"id": "echo"}]},
                        {
                            "id": "a",
                            "baseUrl": "http://127.0.0.1:1/v1",
                            "models": [{"id": "m1"}, {"id": "both"}],
                        },
                        {
                            "id": "b",
                            "baseUrl": "https://api.example.com/v1",
                            "models": [{"id": "both"}],
                        },
                        {"id": "open", "baseUrl": "http://127.0.0.1:2", "models": []},
                    ]
                }
            }
        )
    )


def test_model_resolution() -> None:
    table = _table()
    assert table.resolve("a/m1").model == "m1"
    assert table.resolve("m1").public_id == "a/m1"
    assert table.resolve("b/both").origin.tls
    assert table.resolve("open/anything/with/slashes").model == "anything/with/slashes"
    with pytest.raises(InvalidParams, match="a/both, b/both"):
        table.resolve("both")
    for unknown in ("echo/echo", "a/m2", "nothing"):
        with pytest.raises(NotFound):
            table.resolve(unknown)
    head = table.resolve("b/both").request(b"{}", "rid")
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.example.com\r\n")
    assert head.endswith(b"content-length: 2\r\nx-request-id: rid\r\n\r\n{}")
    assert ("a/m1", "a") in table.listed() and not any(p == "echo" for _, p in table.listed())


def test_session_keys() -> None:
    assert canonical("work", "main") == "agent:main:work"
    assert canonical("agent:x:y", "main") == "agent:x:y"
    assert session_key("main", None, "bob", "openai") == "agent:main:openai-user:bob"
    hashed = session_key("main", None, "bob smith <b@x>", "openai")
    assert hashed.startswith("agent:main:openai-user:") and " " not in hashed
    assert session_key("main", None, None, "openai") != session_key("main", None, None, "openai")


def test_event_payload_readers() -> None:
    assert (
        message_text(
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        )
        == "ab"
    )
    assert usage_of(RunUsage(prompt_tokens=2, completion_tokens=3, total_tokens=5)) == Usage(2, 3)
    assert usage_of(None) == Usage()


def test_responses_conversion() -> None:
    body = CreateResponseBody.model_validate(
        {
            "model": "a/m1",
            "instructions": "brief",
            "input": [
                {"type": "message", "role": "developer", "content": "be nice"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
            ],
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "function", "name": "f"},
            "max_output_tokens": 32,
        }
    )
    request = chat_request(body, "m1")
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["system", "system", "user", "assistant", "tool"]
    assert [c["id"] for c in request["messages"][3]["tool_calls"]] == ["c1", "c2"]
    assert request["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert request["max_tokens"] == 32 and request["stream"] is True
    with pytest.raises(InvalidParams):
        agent_message(body)  # function tools need a provider model
    assert agent_message(CreateResponseBody.model_validate({"input": "hello"})) == "hello"


def _events(raw: list[bytes]) -> list[dict]:
    out = []
    for event in raw:
        name, data = event.decode().rstrip("\n").split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == f"event: {payload['type']}"
        StreamingEvent.validate_python(payload)
        out.append(payload)
    return out


def test_builder_text_then_tool_call() -> None:
    body = CreateResponseBody.model_validate(
        {
            "input": "x",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        }
    )
    builder = ResponseBuilder(body, "a/m1")
    raw = builder.started()
    for step in (
        TextDelta("Let me "),
        TextDelta("check."),
        CallStart(0, "call_1", "f"),
        CallArgs(0, '{"a":'),
        CallArgs(0, "1}"),
        Finished(Usage(4, 5), "tool_calls"),
    ):
        raw += builder.apply(step)
    events = _events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = ResponseResource.model_validate(events[-1]["response"])
    assert final.output[0].content[0].text == "Let me check."
    assert final.output[1].arguments == '{"a":1}' and final.output[1].status == "completed"
    assert final.usage is not None and final.usage.total_tokens == 9


def test_builder_failure_and_empty_answer() -> None:
    builder = ResponseBuilder(CreateResponseBody.model_validate({"input": "x"}), "aisopod/main")
    events = _events(
        builder.started() + builder.apply(TextDelta("par")) + builder.fail("upstream_error", "boom")
    )
    failed = ResponseResource.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None
    assert failed.output[0].status == "incomplete"
    empty = ResponseBuilder(CreateResponseBody.model_validate({"input": "x"}), "aisopod/main")
    events = _events(empty.started() + empty.apply(Finished(Usage(), "stop")))
    assert [e["type"] for e in events][-2:] == ["response.output_item.done", "response.completed"]
    assert ResponseResource.model_validate(events[-1]["response"]).output[0].content[0].text == ""


def test_compaction_round_trip_and_refusal_of_foreign_content() -> None:
    token = compaction.encode("we agreed on Tuesday")
    assert compaction.summary_of(token) == "we agreed on Tuesday"
    for foreign in ("gAAAAABopaque", compaction.PREFIX + "!!!", compaction.PREFIX + "e30"):
        with pytest.raises(InvalidParams) as refused:
            compaction.summary_of(foreign)
        assert refused.value.data["openaiCode"] == "invalid_encrypted_content"
    body = CreateResponseBody.model_validate(
        {
            "input": [
                {"type": "compaction", "encrypted_content": token},
                {"role": "user", "content": "go"},
            ]
        }
    )
    assert (
        agent_message(body) == "[Summary of the earlier conversation]\nwe agreed on Tuesday\n\ngo"
    )
    messages = chat_request(body, "m")["messages"]
    assert messages[0]["role"] == "system" and "Tuesday" in messages[0]["content"]


def test_output_format_checks_the_final_answer() -> None:
    schema = {"type": "object", "required": ["a"]}
    output, ignored = chat_options(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}, "seed": 1}
    )
    assert output == OutputFormat("json_schema", schema) and ignored == ["seed"]
    output.check('```json\n{"a": 1}\n```')  # a fenced answer is fine
    for wrong in ('{"b": 1}', "[1]", "no json"):
        with pytest.raises(UpstreamError):
            output.check(wrong)
    OutputFormat().check("anything")  # text: nothing to check
    with pytest.raises(InvalidParams):
        chat_options({"response_format": {"type": "json_schema", "json_schema": {}}})
    with pytest.raises(InvalidParams):
        chat_options({"response_format": {"type": "yaml"}})
