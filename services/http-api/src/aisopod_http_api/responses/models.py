"""Open Responses request shapes (openresponses.org `CreateResponseBody`), as far as served.

Input items: `message` (user/system/developer/assistant, text parts), `function_call` and
`function_call_output`; `reasoning` items are accepted and ignored. Tools: `function`.
What the gateway cannot honour is refused with a clear 400 rather than silently dropped:
`previous_response_id` and `item_reference` (responses are not stored), `background`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

MAX_TEXT = 10_485_760


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class InputText(_Open):
    type: Literal["input_text"]
    text: str = Field(max_length=MAX_TEXT)


class OutputText(_Open):
    type: Literal["output_text"]
    text: str = Field(max_length=MAX_TEXT)


class InputImage(_Open):
    type: Literal["input_image"]
    image_url: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class InputFile(_Open):
    type: Literal["input_file"]
    filename: str | None = None
    file_data: str | None = None
    file_url: str | None = None


class Refusal(_Open):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    InputText | OutputText | InputImage | InputFile | Refusal, Field(discriminator="type")
]


class MessageItem(_Open):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart] = Field(max_length=MAX_TEXT)
    status: str | None = None


class FunctionCallItem(_Open):
    type: Literal["function_call"]
    id: str | None = None
    call_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    arguments: str
    status: str | None = None


class FunctionCallOutputItem(_Open):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str = Field(min_length=1, max_length=64)
    output: str | list[ContentPart]
    status: str | None = None


class ReasoningItem(_Open):
    type: Literal["reasoning"]


class ItemReference(_Open):
    type: Literal["item_reference"]
    id: str


class CompactionItem(_Open):
    """What `POST /v1/responses/compact` returned: the earlier conversation, summarised.
    `encrypted_content` is opaque to clients (ours is signed, not secret)."""

    type: Literal["compaction"]
    id: str | None = None
    encrypted_content: str = Field(min_length=1, max_length=MAX_TEXT)


def _item_kind(item: Any) -> str | None:
    """An item's `type`; a message may leave it out (OpenAI's short form
    `{"role": "user", "content": "hi"}`, which the Vercel AI SDK sends)."""
    if isinstance(item, dict):
        kind = item.get("type")
        if kind is None and "role" in item:
            return "message"
        return kind if isinstance(kind, str) else None
    return getattr(item, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[CompactionItem, Tag("compaction")],
    Discriminator(
        _item_kind,
        custom_error_type="invalid_item",
        custom_error_message="an input item needs a known `type` (message, function_call, "
        "function_call_output, reasoning, item_reference, compaction) or a `role`",
    ),
]


class FunctionTool(_Open):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class SpecificFunction(BaseModel):
    type: Literal["function"]
    name: str


ToolChoice = Literal["none", "auto", "required"] | SpecificFunction


class CreateResponseBody(_Open):
    model: str | None = Field(
        None,
        max_length=256,
        description="`aisopod/<agentId>` (the default agent when omitted) or a provider model",
    )
    input: str | list[InputItem] | None = None
    instructions: str | None = Field(None, max_length=MAX_TEXT)
    tools: list[FunctionTool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    max_output_tokens: int | None = Field(None, ge=16)
    user: str | None = Field(None, max_length=256)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    store: bool | None = None
    background: bool | None = None
    previous_response_id: str | None = None
