"""An Open Responses response, built step by step: the resource and its streaming events.

Pure: engine steps in, encoded SSE events out (each event one bytes object), and the final
response resource with every field the Open Responses document requires. The sequence is
docs/protocol/http.md's: `response.created`, `response.in_progress`, then per message item
`output_item.added`, `content_part.added`, `output_text.delta`…, `output_text.done`,
`content_part.done`, `output_item.done` (function calls: `output_item.added`,
`function_call_arguments.delta`…, `.done`, `output_item.done`), and last
`response.completed` (`response.incomplete` when cut by `max_output_tokens`) or
`response.failed`. The non-streamed answer is the same builder with the events dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aisopod_http_api.agentturn import Usage
from aisopod_http_api.responses.engines import CallArgs, CallStart, Finished, Step, TextDelta
from aisopod_http_api.responses.models import CreateResponseBody, SpecificFunction
from aisopod_http_api.sse import encode


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def _text_format(body: CreateResponseBody) -> dict[str, Any]:
    """The requested `text.format` echoed (agentoptions validated it), else plain text."""
    text = (body.model_extra or {}).get("text")
    chosen = text.get("format") if isinstance(text, dict) else None
    return dict(chosen) if isinstance(chosen, dict) else {"type": "text"}


class ResponseBuilder:
    def __init__(self, body: CreateResponseBody, model: str) -> None:
        self.body = body
        self.model = model
        self.id = _id("resp")
        self.created_at = int(time.time())
        self.completed_at: int | None = None
        self.status = "in_progress"
        self.error: dict[str, str] | None = None
        self.usage: Usage | None = None
        self.incomplete: dict[str, str] | None = None
        self.items: list[dict[str, Any]] = []
        self._seq = 0
        self._message: dict[str, Any] | None = None
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}  # chat index → function_call item
        self._args: dict[int, list[str]] = {}

    # -- the resource -----------------------------------------------------------------
    def resource(self) -> dict[str, Any]:
        body = self.body
        choice: Any = body.tool_choice if body.tool_choice is not None else "auto"
        if isinstance(choice, SpecificFunction):
            choice = {"type": "function", "name": choice.name}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "status": self.status,
            "incomplete_details": self.incomplete,
            "model": self.model,
            "previous_response_id": body.previous_response_id,
            "instructions": body.instructions,
            "output": [dict(item) for item in self.items],
            "error": self.error,
            "tools": [
                {
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                    "strict": tool.strict,
                }
                for tool in body.tools or []
            ],
            "tool_choice": choice,
            "truncation": "disabled",
            "parallel_tool_calls": body.parallel_tool_calls is not False,
            "text": {"format": _text_format(body)},
            "top_p": body.top_p if body.top_p is not None else 1.0,
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "top_logprobs": 0,
            "temperature": body.temperature if body.temperature is not None else 1.0,
            "reasoning": None,
            "user": body.user,
            "usage": usage_body(self.usage) if self.usage is not None else None,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": None,
            "store": body.store is not False,
            "background": False,
            "service_tier": "default",
            "metadata": dict(body.metadata or {}),
            "safety_identifier": None,
            "prompt_cache_key": None,
        }

    # -- events -----------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode(kind, payload)

    def started(self) -> list[bytes]:
        return [
            self._event("response.created", response=self.resource()),
            self._event("response.in_progress", response=self.resource()),
        ]

    def apply(self, step: Step) -> list[bytes]:
        if isinstance(step, TextDelta):
            return self._text_delta(step.text)
        if isinstance(step, CallStart):
            return self._call_start(step)
        if isinstance(step, CallArgs):
            return self._call_args(step)
        return self._finish(step)

    def fail(self, code: str, message: str) -> list[bytes]:
        self.status = "failed"
        self.error = {"code": code, "message": message}
        for item in self.items:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        return [self._event("response.failed", response=self.resource())]

    def _open_message(self) -> list[bytes]:
        item = {
            "type": "message",
            "id": _id("msg"),
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self._message = item
        self._text = []
        self.items.append(item)
        index = len(self.items) - 1
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [
            self._event("response.output_item.added", output_index=index, item=dict(item)),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def _text_delta(self, text: str) -> list[bytes]:
        events = [] if self._message is not None else self._open_message()
        assert self._message is not None
        self._text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=self._message["id"],
                output_index=self.items.index(self._message),
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _close_message(self, status: str) -> list[bytes]:
        item = self._message
        if item is None:
            return []
        self._message = None
        index = self.items.index(item)
        text = "".join(self._text)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item["content"] = [part]
        item["status"] = status
        return [
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _call_start(self, step: CallStart) -> list[bytes]:
        events = self._close_message("completed")
        item = {
            "type": "function_call",
            "id": _id("fc"),
            "call_id": step.call_id,
            "name": step.name,
            "arguments": "",
            "status": "in_progress",
        }
        self._calls[step.index] = item
        self._args[step.index] = []
        self.items.append(item)
        index = len(self.items) - 1
        events.append(
            self._event("response.output_item.added", output_index=index, item=dict(item))
        )
        return events

    def _call_args(self, step: CallArgs) -> list[bytes]:
        item = self._calls.get(step.index)
        if item is None:
            return []
        self._args[step.index].append(step.delta)
        return [
            self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=self.items.index(item),
                delta=step.delta,
            )
        ]

    def _finish(self, step: Finished) -> list[bytes]:
        cut = step.reason == "length"
        status = "incomplete" if cut else "completed"
        events = [] if self._message is not None or self.items else self._open_message()
        events += self._close_message(status)
        for chat_index, item in self._calls.items():
            if item["status"] != "in_progress":
                continue
            index = self.items.index(item)
            item["arguments"] = "".join(self._args[chat_index])
            item["status"] = status
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
            events.append(
                self._event("response.output_item.done", output_index=index, item=dict(item))
            )
        self.usage = step.usage
        self.status = status
        self.completed_at = int(time.time())
        if cut:
            self.incomplete = {"reason": "max_output_tokens"}
            events.append(self._event("response.incomplete", response=self.resource()))
        else:
            events.append(self._event("response.completed", response=self.resource()))
        return events

    def output_text(self) -> str:
        return "".join(
            part["text"]
            for item in self.items
            if item["type"] == "message"
            for part in item["content"]
        )
