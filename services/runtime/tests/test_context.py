"""Transcript → model messages, attachments, history caps, session keys, KV tokens."""

from __future__ import annotations

import base64

import pytest

from aisopod.errors import InvalidParams
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.context import to_openai, user_content
from aisopod_runtime.kvview import kv_token, kv_untoken
from aisopod_runtime.sessions import preview
from aisopod_runtime.transcripts import cap_bytes, new_message


def test_to_openai_keeps_answered_tool_calls_and_drops_dangling_ones() -> None:
    history = [
        {"role": "user", "content": "q1"},
        {
            "role": "assistant",
            "content": "",
            "toolCalls": [{"id": "a", "name": "t", "args": {"x": 1}}],
        },
        {"role": "tool", "content": '{"ok":1}', "toolCallId": "a"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "q2"},
        # aborted while the tool ran: a call without a result
        {"role": "assistant", "content": "", "toolCalls": [{"id": "b", "name": "t", "args": {}}]},
        {"role": "tool", "content": "orphan", "toolCallId": "zzz"},
        {"role": "assistant", "content": "partial", "stopReason": "aborted"},
    ]
    out = to_openai(history)
    assert out == [
        {"role": "user", "content": "q1"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "t", "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": '{"ok":1}'},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "partial"},
    ]


def test_user_content_with_attachments() -> None:
    assert user_content("hi", None) == "hi"
    text = base64.b64encode(b"line one").decode()
    parts = user_content(
        "see",
        [
            {"mimeType": "image/png", "content": "AAAA"},
            {"mimeType": "text/plain", "content": text, "fileName": "a.txt"},
            {"mimeType": "application/zip", "content": "AAAA", "fileName": "z.zip"},
        ],
    )
    assert parts[0] == {"type": "text", "text": "see"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64,AAAA"
    assert parts[2]["text"] == "[a.txt]\nline one"
    assert parts[3]["text"] == "[attached z.zip (application/zip)]"


def test_cap_bytes_keeps_the_newest_and_cuts_one_huge_message() -> None:
    messages = [new_message("user", "x" * 100) for _ in range(10)]
    kept = cap_bytes(messages, limit=600)
    assert kept == messages[-len(kept) :] and 1 <= len(kept) < 10
    huge = [new_message("assistant", "y" * 5000)]
    (cut,) = cap_bytes(huge, limit=1000)
    assert cut["truncated"] is True and len(cut["content"]) == 500


def test_session_keys() -> None:
    assert parse_session_key("agent:ops:daily", "main") == ("agent:ops:daily", "ops")
    assert parse_session_key("agent:ops:a:b", "main") == ("agent:ops:a:b", "ops")
    assert parse_session_key("work", "main") == ("agent:main:work", "main")
    for bad in ("agent:ops", "agent::x", "agent:b@d:x"):
        with pytest.raises(InvalidParams):
            parse_session_key(bad, "main")
    assert preview("a \n b") == "a b"
    assert len(preview("z" * 500)) == 200


def test_kv_token_round_trips_and_is_a_valid_key_token() -> None:
    for value in ("agent:main:main", "a.b*c>d é/x=y", "plain-key_1"):
        token = kv_token(value)
        assert all(c.isalnum() or c in "-_=" for c in token)
        assert kv_untoken(token) == value
    assert kv_token("agent:x.y") != kv_token("agent:x_y")
