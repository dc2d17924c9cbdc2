from __future__ import annotations

import pytest

from aisopod_fake_upstream.directives import ToolRequest, parse_message
from aisopod_fake_upstream.errors import OpenAIError


def test_plain_text_is_whitespace_collapsed() -> None:
    parsed = parse_message("  hello \n  world  ")
    assert parsed.text == "hello world"
    assert parsed.fake_fields == {}
    assert parsed.tool_requests == ()


def test_fake_directive_fields_and_flags() -> None:
    parsed = parse_message("hi [[fake:status=429 retry_after=1]] there [[fake:drop]]")
    assert parsed.text == "hi there"
    assert parsed.fake_fields == {"status": "429", "retry_after": "1", "drop": "true"}


def test_tool_directive_with_json_arguments_containing_brackets() -> None:
    parsed = parse_message('time? [[tool:get_time {"tz": "UTC", "grid": [[1]]}]] [[tool:ping]]')
    assert parsed.text == "time?"
    assert parsed.tool_requests == (
        ToolRequest("get_time", {"tz": "UTC", "grid": [[1]]}),
        ToolRequest("ping", {}),
    )


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("[[tool: {}]]", "a tool name must follow"),
        ('[[tool:x {"a": }]]', "not valid JSON"),
        ("[[tool:x [1]]]", "must end with"),
        ('[[tool:x {"a": 1}', "must end with"),
    ],
)
def test_bad_tool_directive_is_a_400(raw: str, detail: str) -> None:
    with pytest.raises(OpenAIError) as caught:
        parse_message(raw)
    assert caught.value.status == 400
    assert detail in caught.value.message
