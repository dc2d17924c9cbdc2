"""A session's title from its first user message (OpenClaw's sidebar rules)."""

from __future__ import annotations

import pytest

from aisopod.sessiontitle import TITLE_MAX, session_title


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("hello there", "Hello there"),
        ("  what   is\nthe time?  ", "What is the time?"),
        # The first sentence that asks for something, else the whole text.
        ("I have a problem. Fix the login page please. Thanks!", "Fix the login page please."),
        ('"write a haiku" about rain', '"write a haiku" about rain'),
        ("Hi! (review my PR) now.", "(review my PR) now."),  # a bracket before the verb
        ("Ünïcode first letter", "Ünïcode first letter"),
        ("42 is the answer", "42 is the answer"),
    ],
)
def test_titles(message: str, title: str) -> None:
    assert session_title(message) == title


def test_long_messages_are_cut_at_a_word_when_one_ends_late_enough() -> None:
    text = "please " + "word " * 30
    title = session_title(text)
    assert title is not None and len(title) <= TITLE_MAX and title.endswith("word…")
    unbroken = session_title("x" * 100)
    assert unbroken == "X" + "x" * (TITLE_MAX - 2) + "…"


@pytest.mark.parametrize("message", ["", "   ", "/reset", " /model gpt"])
def test_no_title(message: str) -> None:
    assert session_title(message) is None
