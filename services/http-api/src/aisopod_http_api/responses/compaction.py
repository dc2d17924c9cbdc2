"""`POST /v1/responses/compact`: a conversation, summarised into one `compaction` item.

OpenAI's shape: the answer is a `response.compaction` object whose `output` holds every
user message of the conversation, then one `compaction` item carrying the rest in
`encrypted_content`; a later request sends those items back as its input. Here the summary
is written by the request's own model (an agent turn in a throwaway session, or the
provider), and `encrypted_content` is `aisopod.v1.` + base64url of `{"summary": …}`:
opaque to clients, but not secret (it is the client's own conversation) and not signed (a
client that edits it only changes its own context).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from aisopod.errors import InvalidParams

PREFIX = "aisopod.v1."
MAX_TRANSCRIPT = 400_000  # characters sent to the model to summarise

INSTRUCTION = (
    "Summarise the conversation below for your own later use: keep every fact, decision, "
    "name, number and open question; leave out pleasantries. Answer with the summary only."
)


def encode(summary: str) -> str:
    raw = orjson.dumps({"summary": summary})
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def summary_of(token: str) -> str:
    """The summary inside a compaction item; 400 for anything this gateway did not make."""
    bad = InvalidParams(
        "a compaction item's encrypted_content must come from this gateway's /v1/responses/compact",
        param="input",
        openaiCode="invalid_encrypted_content",
    )
    if not token.startswith(PREFIX):
        raise bad
    body = token[len(PREFIX) :]
    try:
        value = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(value, dict) or not isinstance(value.get("summary"), str):
        raise bad
    return str(value["summary"])


def as_context(summary: str) -> str:
    return f"[Summary of the earlier conversation]\n{summary}"


def transcript(messages: list[dict[str, Any]]) -> str:
    """Chat messages as `role: text` lines for the summarising model (newest kept whole)."""
    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
        if message.get("tool_calls"):
            calls = ", ".join(
                f"{c['function']['name']}({c['function']['arguments']})"
                for c in message["tool_calls"]
            )
            content = f"{content or ''} [called {calls}]".strip()
        if content:
            lines.append(f"{message.get('role', 'user')}: {content}")
    text = "\n".join(lines)
    return text[-MAX_TRANSCRIPT:]


def user_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user messages, as output message items (OpenAI keeps them verbatim)."""
    items = []
    for index, message in enumerate(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
            )
        items.append(
            {
                "type": "message",
                "id": f"msg_c{index}",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_text", "text": str(content or "")}],
            }
        )
    return items
