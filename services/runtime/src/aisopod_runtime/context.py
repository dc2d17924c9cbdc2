"""What the model sees: transcript messages → OpenAI Chat Completions messages. Pure.

The transcript may hold fragments a provider rejects — an assistant tool call whose run
was aborted before the result, or a tool result whose call fell outside the history
window — so unanswered calls and orphan results are dropped.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

TEXT_ATTACHMENT_MAX = 256 * 1024


def user_content(message: str, attachments: list[dict[str, Any]] | None) -> Any:
    """A user message's content: plain text, or OpenAI content parts with attachments
    (images as data URLs, text files inline, anything else named)."""
    if not attachments:
        return message
    parts: list[dict[str, Any]] = [{"type": "text", "text": message}]
    for item in attachments:
        mime = item.get("mimeType", "application/octet-stream")
        name = item.get("fileName") or "attachment"
        data = item.get("content", "")
        if mime.startswith("image/"):
            parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
            continue
        text = _decoded_text(data) if mime.startswith("text/") or mime.endswith("json") else None
        if text is not None:
            parts.append({"type": "text", "text": f"[{name}]\n{text}"})
        else:
            parts.append({"type": "text", "text": f"[attached {name} ({mime})]"})
    return parts


def _decoded_text(data: str) -> str | None:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw[:TEXT_ATTACHMENT_MAX].decode(errors="replace")


def to_openai(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transcript messages as Chat Completions messages, dangling tool calls removed."""
    answered = {m.get("toolCallId") for m in history if m.get("role") == "tool"}
    out: list[dict[str, Any]] = []
    open_calls: set[str] = set()
    for message in history:
        role = message.get("role")
        content = message.get("content")
        if role == "tool":
            call_id = message.get("toolCallId")
            if call_id not in open_calls:
                continue
            text = content if isinstance(content, str) else orjson.dumps(content).decode()
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
            continue
        if role == "assistant":
            calls = [c for c in message.get("toolCalls") or () if c.get("id") in answered]
            open_calls = {c["id"] for c in calls}
            entry: dict[str, Any] = {"role": "assistant", "content": content or None}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {
                            "name": c["name"],
                            "arguments": orjson.dumps(c.get("args") or {}).decode(),
                        },
                    }
                    for c in calls
                ]
            elif not content:
                continue  # an empty answer (aborted before any text) says nothing
            out.append(entry)
            continue
        if role in ("user", "system"):
            open_calls = set()
            out.append({"role": role, "content": content})
    return out
