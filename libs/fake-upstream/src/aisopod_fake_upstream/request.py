"""The Chat Completions request body, validated the way OpenAI does at its boundary.

Only what the fake reads is modelled strictly; every other field is accepted and ignored,
like a real provider that tolerates options it does not use.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import OpenAIError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionCall(_Open):
    name: str
    arguments: str = ""


class ToolCall(_Open):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message text; for content parts, the `text` parts joined by a space."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return " ".join(
            str(part.get("text", ""))
            for part in self.content
            if part.get("type") in ("text", "input_text")
        )


class FunctionDef(_Open):
    name: str = Field(min_length=1)


class ToolDef(_Open):
    type: str = "function"
    function: FunctionDef


class StreamOptions(_Open):
    include_usage: bool = False


class ChatRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def tool_names(self) -> set[str]:
        return {tool.function.name for tool in self.tools or ()}


def parse_chat_request(body: object) -> ChatRequest:
    """Validate a decoded JSON body; raise a 400 `OpenAIError` naming the bad parameter."""
    if not isinstance(body, dict):
        raise OpenAIError(400, "The request body must be a JSON object.")
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _param_name(first["loc"])
        if first["type"] == "missing":
            message, code = f"Missing required parameter: '{param}'.", None
        else:
            message, code = f"Invalid value for '{param}': {first['msg']}.", "invalid_value"
        raise OpenAIError(400, message, param=param, code=code) from exc
    for index, message in enumerate(request.messages):
        if message.role == "tool" and not message.tool_call_id:
            param = f"messages.[{index}].tool_call_id"
            raise OpenAIError(400, f"Missing required parameter: '{param}'.", param=param)
    return request


def _param_name(loc: tuple[int | str, ...]) -> str:
    # OpenAI writes list positions as `messages.[0].role`.
    parts = [f"[{part}]" if isinstance(part, int) else part for part in loc]
    # Union members show up in `loc` as type names (`str`, `list[...]`); drop them.
    return ".".join(
        part for part in parts if not (part in ("str", "none") or part.startswith("list["))
    )
