"""Open Responses input ↔ Chat Completions messages. Pure.

A provider model is served through its Chat Completions endpoint: `instructions` become the
first system message, `message` items messages, consecutive `function_call` items one
assistant message with `tool_calls`, `function_call_output` items `tool` messages; function
tools map one to one. An agent gets only the text of the last user message (it has its own
instructions, tools and memory).
"""

from __future__ import annotations

from typing import Any

from aisopod.errors import InvalidParams
from aisopod_http_api.responses import compaction
from aisopod_http_api.responses.models import (
    CompactionItem,
    CreateResponseBody,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputText,
    ItemReference,
    MessageItem,
    OutputText,
    Refusal,
    SpecificFunction,
)


def refuse_unsupported(body: CreateResponseBody) -> None:
    if body.background:
        raise InvalidParams("background responses are not supported", param="background")
    if isinstance(body.input, list) and any(isinstance(i, ItemReference) for i in body.input):
        raise InvalidParams("item_reference is not supported: send the items", param="input")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, InputText | OutputText):
            parts.append(part.text)
        elif isinstance(part, Refusal):
            parts.append(part.refusal)
    return "\n".join(parts)


def _chat_content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not any(isinstance(part, InputImage) for part in content):
        return _text(content)
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, InputText | OutputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, InputImage) and part.image_url:
            image: dict[str, Any] = {"url": part.image_url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
    return parts


def input_messages(body: CreateResponseBody) -> list[dict[str, Any]]:
    """The input items as chat messages (no instructions: they are per request)."""
    if isinstance(body.input, str):
        return [{"role": "user", "content": body.input}]
    messages: list[dict[str, Any]] = []
    for item in body.input or []:
        if isinstance(item, CompactionItem):
            summary = compaction.summary_of(item.encrypted_content)
            messages.append({"role": "system", "content": compaction.as_context(summary)})
        elif isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            messages.append({"role": role, "content": _chat_content(item.content)})
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(
                {"role": "tool", "tool_call_id": item.call_id, "content": _text(item.output)}
            )
    return messages


def chat_messages(
    body: CreateResponseBody, history: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Instructions, then the stored conversation (previous_response_id), then the input."""
    messages: list[dict[str, Any]] = []
    if body.instructions:
        messages.append({"role": "system", "content": body.instructions})
    messages += history or []
    messages += input_messages(body)
    if not any(m["role"] in ("user", "tool") for m in messages):
        raise InvalidParams("input needs a user message", param="input")
    return messages


def chat_request(
    body: CreateResponseBody, model: str, history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(body, history),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if body.tools:
        request["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description or "",
                    "parameters": tool.parameters or {"type": "object", "properties": {}},
                    **({"strict": tool.strict} if tool.strict is not None else {}),
                },
            }
            for tool in body.tools
        ]
    if isinstance(body.tool_choice, SpecificFunction):
        request["tool_choice"] = {"type": "function", "function": {"name": body.tool_choice.name}}
    elif body.tool_choice is not None:
        request["tool_choice"] = body.tool_choice
    text = (body.model_extra or {}).get("text")
    output = text.get("format") if isinstance(text, dict) else None
    if isinstance(output, dict) and output.get("type") == "json_schema":
        spec = {k: v for k, v in output.items() if k in ("name", "schema", "strict", "description")}
        request["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif isinstance(output, dict) and output.get("type") == "json_object":
        request["response_format"] = {"type": "json_object"}
    for ours, theirs in (
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
        ("parallel_tool_calls", "parallel_tool_calls"),
    ):
        value = getattr(body, ours)
        if value is not None:
            request[theirs] = value
    return request


def agent_message(body: CreateResponseBody) -> str:
    """The last user message's text (tools and options: agentoptions.responses_options)."""
    summary = ""
    if isinstance(body.input, str):
        text = body.input
    else:
        text = ""
        for item in reversed(body.input or []):
            if isinstance(item, FunctionCallOutputItem) and not text:
                raise InvalidParams("function_call_output needs a provider model", param="input")
            if isinstance(item, MessageItem) and item.role == "user" and not text:
                text = _text(item.content)
            if isinstance(item, CompactionItem) and not summary:
                summary = compaction.summary_of(item.encrypted_content)
    if not text.strip():
        raise InvalidParams("input needs a user message with text", param="input")
    # A compacted conversation is context the agent's session may not hold: it goes first.
    return f"{compaction.as_context(summary)}\n\n{text}" if summary else text
