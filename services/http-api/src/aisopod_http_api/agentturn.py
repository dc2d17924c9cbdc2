"""One agent turn through the runtime, as a stream of text deltas and one ending.

Listen on the session first, then call `agent` (idempotent by key), then follow the run's
`chat.event`s, parsed with the emitter's own `ChatEvent` model: a delta carries the FULL
text so far in `message.content` (the new part is what extends what we already have;
`delta` is used when the text was rewritten), `final` ends with usage, `aborted` keeps
the partial text, `error` fails the turn. Should events stop (a NATS reconnect may drop
some), `agent.wait` tells whether the run ended and `chat.history` recovers its text, so a
request never hangs on a lost event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from aisopod.bus import Bus
from aisopod.catalogue.run_events import ChatEvent, RunUsage
from aisopod.errors import AisopodError, Unavailable
from aisopod.principal import Principal
from aisopod_http_api.errors import GatewayTimeout, UpstreamError
from aisopod_http_api.runevents import CHAT, RunEvents

log = logging.getLogger("aisopod.http_api.agentturn")

IDLE_CHECK_S = 15.0


@dataclass(frozen=True, slots=True)
class TurnRequest:
    principal: Principal
    agent_id: str
    session_key: str
    message: str
    timeout_ms: int
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Ended:
    text: str
    usage: Usage
    state: str  # final | aborted


TurnUpdate = Started | Delta | Ended


def message_text(message: Any) -> str:
    """The text of a chat message: a string, or the text parts of a content list."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return ""
    content = message.get("content", message.get("text", ""))
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in (None, "text", "output_text")
        )
    return ""


def usage_of(usage: RunUsage | None) -> Usage:
    """The usage a `final` chat.event carries (none: nothing counted)."""
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens, usage.completion_tokens)


def chat_event(payload: dict[str, Any]) -> ChatEvent | None:
    """The payload as the runtime's emitter built it, or None (logged) when it is not one."""
    try:
        return ChatEvent.model_validate(payload)
    except ValidationError as exc:
        log.error("ignoring a chat.event that breaks its model: %s", exc)
        return None


class AgentTurns:
    def __init__(self, bus: Bus, events: RunEvents) -> None:
        self.bus = bus
        self.events = events

    async def run(self, request: TurnRequest) -> AsyncGenerator[TurnUpdate]:
        deadline = time.monotonic() + request.timeout_ms / 1000
        async with self.events.listen(request.session_key) as listener:
            params = {
                "message": request.message,
                "agentId": request.agent_id,
                "sessionKey": request.session_key,
                "timeoutMs": request.timeout_ms,
                "idempotencyKey": request.idempotency_key,
            }
            result = await self.bus.call("agent", params, principal=request.principal)
            run_id = str(result.get("runId", "")) if isinstance(result, dict) else ""
            if not run_id:
                raise UpstreamError("the runtime started no run", openaiCode="upstream_error")
            listener.run_id = run_id
            yield Started(run_id)
            text = ""
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GatewayTimeout(
                        f"the agent did not finish within {request.timeout_ms} ms",
                        openaiCode="upstream_timeout",
                    )
                try:
                    async with asyncio.timeout(min(remaining, IDLE_CHECK_S)):
                        event = await listener.next()
                except TimeoutError:
                    ended = await self._check_ended(request, run_id, text)
                    if ended is not None:
                        # Deltas lost with the events (a NATS failover): a stream still
                        # gets the rest of the answer the transcript holds.
                        if ended.text.startswith(text) and len(ended.text) > len(text):
                            yield Delta(ended.text[len(text) :])
                        yield ended
                        return
                    continue
                if event.name != CHAT:
                    continue
                chat = chat_event(event.payload)
                if chat is None:
                    continue
                state = chat.state
                full = chat.message.content if chat.message is not None else ""
                if state == "delta":
                    if full.startswith(text):
                        piece = full[len(text) :]
                        text = full
                    else:  # rewritten text: trust the chunk the runtime marked as new
                        piece = chat.delta or ""
                        text += piece
                    if piece:
                        yield Delta(piece)
                elif state in ("final", "aborted"):
                    full = full or text
                    if full.startswith(text) and len(full) > len(text):
                        yield Delta(full[len(text) :])
                    yield Ended(full, usage_of(chat.usage), state)
                    return
                elif state == "error":
                    message = chat.error_message or "the agent run failed"
                    raise UpstreamError(message, openaiCode="agent_error")

    async def _check_ended(self, request: TurnRequest, run_id: str, text: str) -> Ended | None:
        """Events went quiet: ask whether the run is over (it may have ended unseen)."""
        try:
            waited = await self.bus.call(
                "agent.wait", {"runId": run_id, "timeoutMs": 1}, principal=request.principal
            )
        except Unavailable:
            return None
        status = waited.get("status") if isinstance(waited, dict) else None
        if status == "error":
            raise UpstreamError(
                str(waited.get("error") or "the agent run failed"), openaiCode="agent_error"
            )
        if status not in ("ok", "aborted"):
            return None
        final = text
        try:
            history = await self.bus.call(
                "chat.history",
                {"sessionKey": request.session_key, "limit": 1},
                principal=request.principal,
            )
            messages = history.get("messages", []) if isinstance(history, dict) else []
            if messages and messages[-1].get("role") == "assistant":
                final = message_text(messages[-1]) or text
        except AisopodError:
            # The answer is in the transcript but could not be read now (a NATS failover):
            # ask again at the next idle check rather than end with what events brought.
            return None
        return Ended(final, Usage(), "final" if status == "ok" else "aborted")
