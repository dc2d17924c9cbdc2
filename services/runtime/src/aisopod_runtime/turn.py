"""One agent turn: context → provider stream → tool calls → … → the final answer.

The user message is already in the transcript; each step streams the model's answer
(deltas through the emitter), and when the model asks for tools, the assistant message
with its calls, then each tool's result, are appended to the transcript and fed back.
The loop ends with an answer without tool calls, or fails after `maxToolSteps` model
calls. Cancellation (abort, timeout) leaves `partial` with the text streamed so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from aisopod.catalogue.agents import Agent
from aisopod.errors import AisopodError, InvalidParams
from aisopod.principal import Principal
from aisopod_runtime.agent_files import compose_prompt
from aisopod_runtime.context import to_openai
from aisopod_runtime.emitter import RunEmitter
from aisopod_runtime.providers import (
    Finish,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCalls,
    Usage,
)
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.tools.methods import failure, run_tool
from aisopod_runtime.tools.registry import ToolContext
from aisopod_runtime.transcripts import new_message

log = logging.getLogger("aisopod.runtime.turn")


class TurnError(Exception):
    """The turn cannot finish (provider failure, too many steps); the run ends `error`."""


@dataclass(slots=True)
class Outcome:
    text: str
    usage: Usage
    message_id: str
    steps: int


class Turn:
    def __init__(
        self,
        parts: RuntimeService,
        emitter: RunEmitter,
        *,
        run_id: str,
        session_key: str,
        agent: Agent,
        model_ref: str,
        principal: Principal,
        history: list[dict[str, Any]],
        prompt_files: list[tuple[str, str]] | None = None,
    ) -> None:
        """`prompt_files`: the agent's files (`AgentFiles.contents`) when the caller has
        read them already; None to read them here."""
        self.parts = parts
        self.emitter = emitter
        self.run_id = run_id
        self.session_key = session_key
        self.agent = agent
        self.model_ref = model_ref
        self.principal = principal
        self.history = history
        self.prompt_files = prompt_files
        self.usage = Usage()

    @property
    def partial(self) -> str:
        return self.emitter.text

    async def run(self) -> Outcome:
        config = self.parts.config
        defaults = config.models.agents
        if self.prompt_files is None:
            files = self.parts.require_agent_files()
            instructions = await files.system_prompt(self.agent, defaults.instructions)
        else:
            base = self.agent.instructions or defaults.instructions
            instructions = compose_prompt(base, self.prompt_files)
        messages = [{"role": "system", "content": instructions}, *to_openai(self.history)]
        tools = self.parts.tools.available(config.tools, "agent", self.agent.tools)
        specs = [t.openai_spec() for t in tools]
        try:
            provider, model_id = self.parts.providers.resolve(self.model_ref)
        except (ProviderError, InvalidParams) as exc:
            raise TurnError(str(exc)) from None
        for step in range(1, defaults.max_tool_steps + 1):
            self.emitter.reset_text()
            calls: tuple[ToolCall, ...] = ()
            try:
                async for event in provider.stream(ModelRequest(model_id, messages, specs)):
                    if isinstance(event, TextDelta):
                        await self.emitter.add_text(event.text)
                    elif isinstance(event, ToolCalls):
                        calls = tuple(
                            c if c.id else ToolCall(f"call_{step}_{i}", c.name, c.arguments)
                            for i, c in enumerate(event.calls)
                        )
                    elif isinstance(event, Finish) and event.usage is not None:
                        self.usage = self.usage + event.usage
            except ProviderError as exc:
                raise TurnError(exc.message) from exc
            text = self.emitter.text
            if not calls:
                await self.emitter.text_done()
                final = new_message(
                    "assistant",
                    text,
                    runId=self.run_id,
                    model=self.model_ref,
                    usage=self.usage.wire(),
                )
                await self.parts.transcripts.append(self.session_key, final)
                return Outcome(text, self.usage, final["id"], step)
            self.emitter.step_done()
            messages.extend(await self._call_tools(text, calls))
        raise TurnError(
            f"the model kept calling tools; stopped after {defaults.max_tool_steps} steps"
        )

    async def _call_tools(self, text: str, calls: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
        """Run each call; the assistant and tool messages, persisted and for the model."""
        parsed = [(call, _arguments(call)) for call in calls]
        asked = new_message(
            "assistant",
            text,
            runId=self.run_id,
            toolCalls=[{"id": c.id, "name": c.name, "args": args or {}} for c, args in parsed],
        )
        await self.parts.transcripts.append(self.session_key, asked)
        out: list[dict[str, Any]] = [
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ],
            }
        ]
        for call, args in parsed:
            content = await self._call_one(call, args)
            answer = new_message(
                "tool", content, runId=self.run_id, toolCallId=call.id, toolName=call.name
            )
            await self.parts.transcripts.append(self.session_key, answer)
            out.append({"role": "tool", "tool_call_id": call.id, "content": content})
        return out

    async def _call_one(self, call: ToolCall, args: dict[str, Any] | None) -> str:
        self.emitter.post_tool("start", call.id, call.name, args=args)
        config = self.parts.config
        try:
            if args is None:
                raise InvalidParams("the tool arguments are not a JSON object")
            tool = self.parts.tools.resolve(call.name, config.tools, "agent", self.agent.tools)
            ctx = ToolContext(
                principal=self.principal,
                surface="agent",
                services=self.parts,
                session_key=self.session_key,
                agent_id=self.agent.id,
                run_id=self.run_id,
                call_id=call.id,
            )
            timeout_s = config.tools.timeout_ms / 1000
            if tool.name == "exec":
                timeout_s += config.tools.exec_approval_timeout_ms / 1000
            result = await run_tool(tool, args, ctx, timeout_s)
        except Exception as exc:  # a tool (maybe a plugin's) fails alone, never the run
            if not isinstance(exc, (AisopodError, TimeoutError)):
                log.exception("tool %s failed", call.name)
            error = failure(exc)
            self.emitter.post_tool("error", call.id, call.name, result=error)
            return orjson.dumps(error).decode()
        self.emitter.post_tool("result", call.id, call.name, result=result)
        return orjson.dumps(result).decode()


def _arguments(call: ToolCall) -> dict[str, Any] | None:
    try:
        value = orjson.loads(call.arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
