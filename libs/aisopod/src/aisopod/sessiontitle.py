"""A session's title from its first user message, without calling a model.

The runtime records it in the session entry (`title`) when that message is sent, so a
listing shows it without reading transcripts (docs/runtime.md, Sessions). The rules are
OpenClaw's for its sidebar titles, so its Control UI shows what it would show against
OpenClaw: the whitespace collapsed; the first sentence that starts with a task verb
("fix …", "write …"), else the whole text; its first letter upper-cased; at most
`TITLE_MAX` characters, cut at a word when one ends in the last 40 % (then "…"). A message
that is a command (`/reset`) gives no title.
"""

from __future__ import annotations

import re

TITLE_MAX = 60
TASK_VERBS = frozenset(
    [
        "add",
        "analyze",
        "build",
        "check",
        "compare",
        "create",
        "debug",
        "design",
        "draft",
        "explain",
        "find",
        "fix",
        "give",
        "help",
        "implement",
        "investigate",
        "list",
        "make",
        "plan",
        "prepare",
        "recommend",
        "recover",
        "rename",
        "resume",
        "review",
        "summarize",
        "test",
        "update",
        "write",
    ]
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LEADING_QUOTES = re.compile(r"^[\"'`(\[{]+")


def _goal(text: str) -> str:
    """The first sentence that asks for something, else the whole text."""
    for sentence in _SENTENCE_END.split(text):
        words = _LEADING_QUOTES.sub("", sentence).split()
        if words and words[0].lower() in TASK_VERBS:
            return sentence.strip()
    return text


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut) + "…"


def session_title(message: str, limit: int = TITLE_MAX) -> str | None:
    flat = " ".join(message.split())
    if not flat or flat.startswith("/"):
        return None
    goal = _goal(flat)
    if goal[0].islower():
        goal = goal[0].upper() + goal[1:]
    return _truncate(goal, limit)
