"""Chat Completions in agent mode: an agent turn rendered as `chat.completion`(`.chunk`)s.

The agent keeps its own instructions, tools and session memory, so only the last user
message is sent. Streaming starts once the runtime accepted the run (so a refused run is a
proper HTTP error); a failure after that is an SSE `error` event, as OpenAI sends them. A
client that disconnects aborts the run (`chat.abort`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from starlette.types import Receive, Send

from aisopod.bus import Bus
from aisopod.errors import AisopodError, InvalidParams
from aisopod_http_api import rawio
from aisopod_http_api.agentoptions import OutputFormat
from aisopod_http_api.agentturn import AgentTurns, Delta, Ended, Started, TurnRequest, Usage
from aisopod_http_api.openai_models import ChatCompletionRequest, ChatMessageIn

DONE = b"data: [DONE]\n\n"


def last_user_text(messages: list[ChatMessageIn]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, str):
                text = content
            elif isinstance(content, list):
                text = " ".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
            else:
                text = ""
            if text.strip():
                return text
            break
    raise InvalidParams("agent mode needs a last user message with text", param="messages")


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class _Chunks:
    """Encodes the chunks of one streamed completion."""

    def __init__(self, completion_id: str, model: str) -> None:
        self.head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, usage: Any = None, **extra: Any
    ) -> bytes:
        body = {
            **self.head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        if usage is not None:
            body["usage"] = usage
        return b"data: " + orjson.dumps(body) + b"\n\n"

    def usage(self, usage: Usage) -> bytes:
        body = {**self.head, "choices": [], "usage": _usage(usage)}
        return b"data: " + orjson.dumps(body) + b"\n\n"


class AgentChat:
    def __init__(self, bus: Bus, turns: AgentTurns) -> None:
        self.bus = bus
        self.turns = turns

    async def complete(
        self,
        path: str,
        receive: Receive,
        send: Send,
        request: ChatCompletionRequest,
        turn: TurnRequest,
        output: OutputFormat | None = None,
    ) -> None:
        model = f"aisopod/{turn.agent_id}"
        run: dict[str, str] = {}
        output = output or OutputFormat()
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            work = self._stream(path, send, turn, model, include_usage, run, output)
        else:
            work = self._whole(path, send, turn, model, run, output)
        if not await rawio.unless_gone(receive, work) and "runId" in run:
            await self._abort(turn, run["runId"])

    async def _whole(
        self,
        path: str,
        send: Send,
        turn: TurnRequest,
        model: str,
        run: dict[str, str],
        output: OutputFormat,
    ) -> None:
        try:
            text, usage = "", Usage()
            async for update in self.turns.run(turn):
                if isinstance(update, Started):
                    run["runId"] = update.run_id
                elif isinstance(update, Ended):
                    text, usage = update.text, update.usage
            output.check(text)
        except AisopodError as exc:
            await rawio.send_error(send, path, exc)
            return
        body = {
            "id": f"chatcmpl-{run.get('runId', '')}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(usage),
            "system_fingerprint": None,
        }
        await rawio.send_bytes(send, 200, orjson.dumps(body))

    async def _stream(
        self,
        path: str,
        send: Send,
        turn: TurnRequest,
        model: str,
        include_usage: bool,
        run: dict[str, str],
        output: OutputFormat,
    ) -> None:
        chunks: _Chunks | None = None
        null_usage = {"usage": None} if include_usage else {}
        try:
            async for update in self.turns.run(turn):
                if isinstance(update, Started):
                    run["runId"] = update.run_id
                    chunks = _Chunks(f"chatcmpl-{update.run_id}", model)
                    await rawio.start_stream(send)
                    role = {"role": "assistant", "content": "", "refusal": None}
                    await rawio.stream_chunk(send, chunks.chunk(role, **null_usage))
                elif isinstance(update, Delta) and chunks is not None:
                    piece = chunks.chunk({"content": update.text}, **null_usage)
                    await rawio.stream_chunk(send, piece)
                elif isinstance(update, Ended) and chunks is not None:
                    output.check(update.text)
                    tail = chunks.chunk({}, "stop", **null_usage)
                    if include_usage:
                        tail += chunks.usage(update.usage)
                    await rawio.stream_chunk(send, tail + DONE)
                    await rawio.end_stream(send)
        except AisopodError as exc:
            if chunks is None:
                await rawio.send_error(send, path, exc)
                return
            error = {
                "message": exc.message,
                "type": "upstream_error",
                "param": None,
                "code": str(exc.data.get("openaiCode") or exc.detail_code.lower()),
            }
            await rawio.stream_chunk(send, b"data: " + orjson.dumps({"error": error}) + b"\n\n")
            await rawio.end_stream(send)

    async def _abort(self, turn: TurnRequest, run_id: str) -> None:
        params = {"sessionKey": turn.session_key, "runId": run_id}
        with contextlib.suppress(AisopodError, asyncio.TimeoutError):
            await self.bus.call("chat.abort", params, principal=turn.principal, timeout=5.0)
