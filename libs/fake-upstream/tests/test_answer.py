from __future__ import annotations

from typing import Any

import orjson
import pytest

from aisopod_fake_upstream.answer import parse_last_user, plan_reply
from aisopod_fake_upstream.errors import OpenAIError
from aisopod_fake_upstream.render import DONE_EVENT, Envelope, completion_body, stream_events
from aisopod_fake_upstream.request import parse_chat_request

TOOLS = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]


def plan(body: dict[str, Any], words: int | None = None) -> Any:
    request = parse_chat_request({"model": "m", **body})
    _, parsed = parse_last_user(request)
    return plan_reply(request, parsed, words)


def test_echo_of_last_user_message_with_word_counts() -> None:
    reply = plan(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "echo: first"},
                {"role": "user", "content": [{"type": "text", "text": "second  one"}]},
            ]
        }
    )
    assert reply.content == "echo: second one"
    assert reply.pieces == ("echo:", " second", " one")
    assert (reply.prompt_tokens, reply.completion_tokens) == (7, 3)
    assert reply.finish_reason == "stop"


def test_words_makes_a_long_answer_of_exact_length() -> None:
    reply = plan({"messages": [{"role": "user", "content": "a b"}]}, words=7)
    assert reply.content == "echo: a b echo: a b echo:"
    assert reply.completion_tokens == 7


def test_max_tokens_cuts_with_finish_reason_length() -> None:
    reply = plan({"messages": [{"role": "user", "content": "a b c d"}], "max_tokens": 2})
    assert (reply.content, reply.finish_reason) == ("echo: a", "length")


def test_tool_directive_becomes_tool_calls_only_when_tools_are_declared() -> None:
    message = {"role": "user", "content": 'now? [[tool:get_time {"tz":"UTC"}]]'}
    with_tools = plan({"messages": [message], "tools": TOOLS})
    assert with_tools.finish_reason == "tool_calls"
    assert with_tools.content is None
    (call,) = with_tools.tool_calls
    assert (call.name, orjson.loads(call.arguments)) == ("get_time", {"tz": "UTC"})
    assert call.id.startswith("call_")
    without_tools = plan({"messages": [message]})
    assert without_tools.content == "echo: now?"


def test_undeclared_tool_is_a_400() -> None:
    with pytest.raises(OpenAIError) as caught:
        plan({"messages": [{"role": "user", "content": "[[tool:rm_rf]]"}], "tools": TOOLS})
    assert caught.value.status == 400
    assert "rm_rf" in caught.value.message


def test_tool_results_are_echoed_with_the_tool_name() -> None:
    reply = plan(
        {
            "tools": TOOLS,
            "messages": [
                {"role": "user", "content": "[[tool:get_time]] [[tool:get_time]]"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "get_time"}},
                        {"id": "c2", "type": "function", "function": {"name": "get_time"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "12:00 UTC"},
                {"role": "tool", "tool_call_id": "c2", "content": '{"ok": true}'},
            ],
        }
    )
    assert (
        reply.content == 'tool get_time returned: 12:00 UTC; tool get_time returned: {"ok": true}'
    )


def test_completion_object_shape() -> None:
    reply = plan({"messages": [{"role": "user", "content": "hi"}]})
    body = orjson.loads(completion_body(reply, Envelope("chatcmpl-1", 5, "m")))
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: hi",
        "refusal": None,
    }
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def decode(events: list[bytes]) -> list[dict[str, Any]]:
    assert events[-1] == DONE_EVENT
    for event in events:
        assert event.startswith(b"data: ")
        assert event.endswith(b"\n\n")
        assert b"\n" not in event[:-2]
    return [orjson.loads(event[6:]) for event in events[:-1]]


def test_stream_events_text_with_usage() -> None:
    reply = plan({"messages": [{"role": "user", "content": "a b"}]})
    chunks = decode(stream_events(reply, Envelope("chatcmpl-1", 5, "m"), include_usage=True))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks[:-1])
    assert text == "echo: a b"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_stream_events_tool_call_arguments_reassemble() -> None:
    arguments = {"tz": "Europe/Amsterdam", "format": "iso8601", "precise": True}
    content = f"[[tool:get_time {orjson.dumps(arguments).decode()}]]"
    reply = plan({"tools": TOOLS, "messages": [{"role": "user", "content": content}]})
    chunks = decode(stream_events(reply, Envelope("chatcmpl-1", 5, "m"), include_usage=False))
    assert "usage" not in chunks[0]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[0]["role"] == "assistant"
    opening = deltas[1]["tool_calls"][0]
    assert (opening["index"], opening["function"]["name"]) == (0, "get_time")
    assert opening["id"] == reply.tool_calls[0].id
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert len(fragments) > 2
    assert orjson.loads("".join(fragments)) == arguments
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_block_is_summarised_deterministically_and_shorter() -> None:
    lines = [f"user: question number {i} about the weather in Paris today" for i in range(14)]
    block = "Summarise this.\n<conversation>\n" + "\n\n".join(lines) + "\n</conversation>"
    body = {
        "messages": [
            {"role": "system", "content": "You summarise."},
            {"role": "user", "content": block},
        ]
    }
    reply = plan(body)
    assert reply.content == (
        "summary of 14 lines: "
        + "; ".join(f"user: question number {i} about the" for i in range(6))
        + "; … (2 more); "
        + "; ".join(f"user: question number {i} about the" for i in range(8, 14))
    )
    assert plan(body).content == reply.content
    assert len(reply.content.split()) < len(block.split())
    short = plan(
        {"messages": [{"role": "user", "content": "<conversation>\na b\n</conversation>"}]}
    )
    assert short.content == "summary of 1 lines: a b"
    # Without a closed block it is an ordinary echo.
    plain = plan({"messages": [{"role": "user", "content": "<conversation> a b"}]})
    assert plain.content == "echo: <conversation> a b"
