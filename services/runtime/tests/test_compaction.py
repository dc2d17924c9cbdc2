"""Compaction's pure parts: the compacted view, turn splitting, the summary request's lines,
and the echo provider's summary rule (the fake upstream's)."""

from __future__ import annotations

from typing import Any

from aisopod_runtime.compaction import (
    SUMMARY_PREFIX,
    compacted_view,
    estimate_tokens,
    for_model,
    split_turns,
    summary_line,
)
from aisopod_runtime.providers import ModelRequest, TextDelta
from aisopod_runtime.providers.echo import EchoProvider


def msg(id_: str, role: str = "user", content: str = "x", **fields: Any) -> dict[str, Any]:
    return {"id": id_, "role": role, "content": content, "ts": 1, **fields}


def compaction(id_: str, last: str, summary: str = "sum") -> dict[str, Any]:
    return msg(id_, "system", summary, compaction={"lastCompactedId": last})


def ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["id"] for m in messages]


def test_the_view_starts_at_the_newest_compaction_then_what_follows_its_last_message() -> None:
    plain = [msg("a"), msg("b", "assistant")]
    assert compacted_view(plain) == plain
    stream = [
        msg("a"),
        msg("b", "assistant"),
        msg("c"),
        msg("d", "assistant"),
        compaction("C", "b"),
    ]
    assert ids(compacted_view(stream)) == ["C", "c", "d"]
    # Appended while the summary was made, or after: still in view.
    assert ids(compacted_view([*stream, msg("e")])) == ["C", "c", "d", "e"]
    # A newer compaction replaces the older one, which is dropped wherever it sits.
    later = [*stream, msg("e"), msg("f", "assistant"), compaction("C2", "d")]
    assert ids(compacted_view(later)) == ["C2", "e", "f"]
    # The read window starts after the last summarised message: all of it is newer.
    assert ids(compacted_view(stream[2:])) == ["C", "c", "d"]


def test_the_model_reads_the_summary_as_a_user_message() -> None:
    view = compacted_view([msg("a"), compaction("C", "a", "they met"), msg("b")])
    first, second = for_model(view)
    assert first == {"id": "C", "role": "user", "content": SUMMARY_PREFIX + "they met"}
    assert second["id"] == "b"


def test_turns_split_at_user_messages_so_tool_pairs_stay_together() -> None:
    view = [
        msg("u1"),
        msg("a1", "assistant", "", toolCalls=[{"id": "t", "name": "clock", "args": {}}]),
        msg("t1", "tool", "12:00", toolCallId="t", toolName="clock"),
        msg("a1b", "assistant", "noon"),
        msg("u2"),
        msg("a2", "assistant"),
    ]
    assert split_turns(view, 1) == 4
    assert split_turns(view, 2) == 0
    assert split_turns(view, 3) == 0  # fewer turns than kept: nothing old
    assert split_turns(view, 0) == len(view)
    lines = [summary_line(m) for m in view[:4]]
    assert lines == ["user: x", "assistant: [calls clock]", "tool clock: 12:00", "assistant: noon"]
    assert summary_line(msg("e", "assistant", "", stopReason="aborted")) is None
    assert summary_line(msg("m", "user", "a\n\n b  c")) == "user: a b c"


def test_estimates_count_about_four_characters_a_token() -> None:
    assert estimate_tokens([msg("a", content="x" * 400)]) == 104
    assert estimate_tokens([], "y" * 40) == 10


async def test_echo_summarises_a_conversation_block_like_the_fake_upstream() -> None:
    block = (
        "Summarise.\n<conversation>\n"
        + "\n".join(f"user: line {i} with some more words" for i in range(14))
        + "\n</conversation>"
    )
    request = ModelRequest("echo", [{"role": "user", "content": block}])
    events = [e async for e in EchoProvider().stream(request)]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    heads = [f"user: line {i} with some more" for i in range(14)]
    assert text == "summary of 14 lines: " + "; ".join([*heads[:6], "… (2 more)", *heads[8:]])
