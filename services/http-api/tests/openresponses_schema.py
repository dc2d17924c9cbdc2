"""The Open Responses shapes our output must meet, written from its specification (openresponses.org
OpenAPI: ResponseResource, ItemField, streaming events) independently of the builder, so the
check is not circular. Required fields are required here; extra fields are allowed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _M(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class UrlCitation(_M):
    type: Literal["url_citation"]
    url: str
    start_index: int
    end_index: int
    title: str


class OutputTextContent(_M):
    type: Literal["output_text"]
    text: str
    annotations: list[UrlCitation]
    logprobs: list[dict[str, Any]] | None = None


class Message(_M):
    type: Literal["message"]
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["user", "assistant", "system", "developer"]
    content: list[OutputTextContent]


class FunctionCall(_M):
    type: Literal["function_call"]
    id: str
    call_id: str
    name: str
    arguments: str
    status: Literal["in_progress", "completed", "incomplete"]


Item = Annotated[Message | FunctionCall, Field(discriminator="type")]


class FunctionTool(_M):
    type: Literal["function"]
    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class Usage(_M):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens_details: dict[str, int]


class TextField(_M):
    format: dict[str, Any]


class Error(_M):
    code: str
    message: str


class ResponseResource(_M):
    id: str
    object: Literal["response"]
    created_at: int
    completed_at: int | None
    status: str
    incomplete_details: dict[str, str] | None
    model: str
    previous_response_id: str | None
    instructions: str | None
    output: list[Item]
    error: Error | None
    tools: list[FunctionTool]
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any]
    truncation: Literal["auto", "disabled"]
    parallel_tool_calls: bool
    text: TextField
    top_p: float | int
    presence_penalty: float | int
    frequency_penalty: float | int
    top_logprobs: int
    temperature: float | int
    reasoning: dict[str, Any] | None
    user: str | None
    usage: Usage | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    store: bool
    background: bool
    service_tier: str
    metadata: Any
    safety_identifier: str | None
    prompt_cache_key: str | None


class _Event(_M):
    sequence_number: int


class ResponseEvent(_Event):
    type: Literal[
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.failed",
        "response.incomplete",
    ]
    response: ResponseResource


class ItemEvent(_Event):
    type: Literal["response.output_item.added", "response.output_item.done"]
    output_index: int
    item: Item | None


class PartEvent(_Event):
    type: Literal["response.content_part.added", "response.content_part.done"]
    item_id: str
    output_index: int
    content_index: int
    part: OutputTextContent


class TextDeltaEvent(_Event):
    type: Literal["response.output_text.delta"]
    item_id: str
    output_index: int
    content_index: int
    delta: str


class TextDoneEvent(_Event):
    type: Literal["response.output_text.done"]
    item_id: str
    output_index: int
    content_index: int
    text: str


class ArgsDeltaEvent(_Event):
    type: Literal["response.function_call_arguments.delta"]
    item_id: str
    output_index: int
    delta: str


class ArgsDoneEvent(_Event):
    type: Literal["response.function_call_arguments.done"]
    item_id: str
    output_index: int
    arguments: str


StreamingEvent = TypeAdapter(
    Annotated[
        ResponseEvent
        | ItemEvent
        | PartEvent
        | TextDeltaEvent
        | TextDoneEvent
        | ArgsDeltaEvent
        | ArgsDoneEvent,
        Field(discriminator="type"),
    ]
)
