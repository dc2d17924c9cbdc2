"""Compaction: old turns of a session summarised through the agent's model.

A compaction appends one entry to the session's transcript, after everything it read:
`{role: "system", content: SUMMARY, compaction: {lastCompactedId, compactedMessages,
keptMessages, tokensBefore, tokensAfter, auto, model}, usage, model}`. Nothing is removed
(transcripts are append-only, history.py relies on it): the entry changes how the
transcript is *read* (`compacted_view`): from the newest compaction entry on, a reader
sees that entry first and then only the messages after `lastCompactedId` — the kept turns,
anything appended meanwhile, the later turns. The model gets the summary as a user
message in place of the entry (`for_model`). Writing one entry after the fact, rather
than rewriting the transcript, needs no lock against runs: a message a run appends while
the summary is made lands after `lastCompactedId`, so it stays in view.

Two ways in: `sessions.compact` (refused while a run holds the session, so a half-done
turn is never summarised), and a run whose request nears the model's context window
(`before_turn`). When the summary call fails, nothing is written: the manual call answers
the error, a run goes on with its uncompacted history.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aisopod import codec
from aisopod.catalogue.agents import Agent
from aisopod.catalogue.chat import CompactionRecord
from aisopod.catalogue.sessions import SessionsCompactParams, SessionsCompactResult
from aisopod.errors import AisopodError, Conflict, Unavailable
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.providers import Finish, ModelRequest, ProviderError, TextDelta, Usage
from aisopod_runtime.providers.registry import split_model_ref
from aisopod_runtime.runs import is_terminal, lease_expired
from aisopod_runtime.service import RuntimeService
from aisopod_runtime.transcripts import new_message

log = logging.getLogger("aisopod.runtime.compaction")

CHARS_PER_TOKEN = 4
LINE_MAX_CHARS = 2000
"""One message's text in the summary request (a huge tool output must not crowd out the rest)."""
SUMMARY_SYSTEM = (
    "You condense conversations so they can go on without their full history. Write a "
    "concise summary of the conversation between the <conversation> tags (one message per "
    "line). Keep what the rest of the conversation may need: facts, names, numbers, "
    "decisions, the user's requests and preferences, open questions and unfinished tasks. "
    "Answer with the summary only."
)
SUMMARY_PREFIX = "Summary of the earlier conversation (older messages were compacted):\n\n"


class CompactionFailed(Unavailable):
    """The summary call failed; nothing was written."""


@dataclass(slots=True)
class Compacted:
    entry: dict[str, Any] | None
    """The entry written, or None when there was nothing to compact (`reason`)."""
    view: list[dict[str, Any]]
    """What a reader sees afterwards (the entry first), or the unchanged view."""
    reason: str | None = None


def is_compaction(message: dict[str, Any]) -> bool:
    return isinstance(message.get("compaction"), dict)


def compacted_view(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as readers see them: the newest compaction entry first, then only what
    came after the last message it summarised (older compaction entries dropped)."""
    at = next((i for i in range(len(messages) - 1, -1, -1) if is_compaction(messages[i])), None)
    if at is None:
        return messages
    entry = messages[at]
    last_id = entry["compaction"].get("lastCompactedId")
    start = next((i + 1 for i in range(at) if messages[i].get("id") == last_id), 0)
    # Not found: the read window starts after it, so everything in it is newer.
    return [entry, *(m for m in messages[start:] if not is_compaction(m))]


def for_model(view: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A view with its compaction entry as the user message the model reads."""
    return [
        {"id": m["id"], "role": "user", "content": SUMMARY_PREFIX + str(m.get("content") or "")}
        if is_compaction(m)
        else m
        for m in view
    ]


def estimate_tokens(messages: list[dict[str, Any]], *texts: str) -> int:
    """About 4 characters a token (content, tool calls), plus a little per message."""
    chars = sum(len(t) for t in texts)
    for message in messages:
        content = message.get("content")
        chars += len(content) if isinstance(content, str) else len(codec.dumps(content))
        if message.get("toolCalls"):
            chars += len(codec.dumps(message["toolCalls"]))
        chars += 4 * CHARS_PER_TOKEN
    return chars // CHARS_PER_TOKEN


def summary_line(message: dict[str, Any]) -> str | None:
    """One message as one line of the summary request; None when it says nothing."""
    content = message.get("content")
    if isinstance(content, list):
        text = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    else:
        text = str(content or "")
    text = " ".join(text.split())
    if len(text) > LINE_MAX_CHARS:
        text = text[:LINE_MAX_CHARS] + "…"
    role = message.get("role")
    if is_compaction(message):
        return f"earlier summary: {text}"
    if role == "assistant" and message.get("toolCalls"):
        names = ", ".join(str(c.get("name")) for c in message["toolCalls"])
        return f"assistant: {text} [calls {names}]".replace(":  [", ": [")
    if role == "tool":
        return f"tool {message.get('toolName') or ''}: {text}".replace("tool : ", "tool: ")
    if not text or role not in ("user", "assistant", "system"):
        return None
    return f"{role}: {text}"


def split_turns(view: list[dict[str, Any]], keep_turns: int) -> int:
    """Where the kept part of `view` starts: at the user message opening the
    `keep_turns`-th newest turn (len(view) when none are kept)."""
    if keep_turns == 0:
        return len(view)
    starts = [i for i, m in enumerate(view) if m.get("role") == "user"]
    if len(starts) < keep_turns:
        return 0
    return starts[-keep_turns]


class Compactor:
    def __init__(self, parts: RuntimeService) -> None:
        self.parts = parts
        self._running: set[str] = set()
        """Sessions this process is compacting now (a second request is refused)."""

    def context_window(self, model_ref: str) -> int | None:
        """The model's configured `contextWindow`, or None when the config gives none."""
        try:
            provider_id, model_id = split_model_ref(model_ref)
        except AisopodError:
            return None
        config = self.parts.providers.configs.get(provider_id)
        if config is None:
            return None
        return next((m.context_window for m in config.models if m.id == model_id), None)

    async def compact(
        self,
        session_key: str,
        model_ref: str,
        *,
        keep_turns: int,
        instructions: str | None = None,
        auto: bool = False,
        messages: list[dict[str, Any]] | None = None,
    ) -> Compacted:
        """Summarise all but the newest `keep_turns` turns of what the model sees now.

        `messages`: the session's last messages when the caller has read them already.
        Raises CompactionFailed (nothing written) when the summary call fails.
        """
        if session_key in self._running:
            raise Conflict(f"session {session_key!r} is being compacted already", code="COMPACTING")
        self._running.add(session_key)
        try:
            if messages is None:
                limit = self.parts.config.models.agents.history_limit
                messages = await self.parts.transcripts.read(session_key, limit)
            view = compacted_view(messages)
            cut = split_turns(view, keep_turns)
            old, kept = view[:cut], view[cut:]
            if not any(not is_compaction(m) for m in old):
                turns = sum(1 for m in view if m.get("role") == "user")
                reason = f"nothing to compact: {turns} turn(s), keeping {keep_turns}"
                return Compacted(None, view, reason)
            summary, usage = await self._summarise(model_ref, old, instructions)
            record = CompactionRecord(
                last_compacted_id=old[-1]["id"],
                compacted_messages=sum(1 for m in old if not is_compaction(m)),
                kept_messages=len(kept),
                tokens_before=estimate_tokens(for_model(view)),
                tokens_after=estimate_tokens(kept, SUMMARY_PREFIX, summary),
                auto=auto,
                model=model_ref,
            )
            entry = new_message(
                "system",
                summary,
                compaction=record.wire(),
                model=model_ref,
                usage=usage.wire(),
            )
            await self.parts.transcripts.append(session_key, entry)
            await self._charge(session_key, model_ref, entry["id"], usage)
            log.info(
                "compacted %s: %d messages into a summary, %d kept (%s)",
                session_key,
                record.compacted_messages,
                record.kept_messages,
                "auto" if auto else "asked",
            )
            return Compacted(entry, [entry, *kept])
        finally:
            self._running.discard(session_key)

    async def before_turn(
        self,
        session_key: str,
        agent: Agent,
        model_ref: str,
        history: list[dict[str, Any]],
        asked: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """The history a turn sends (model form), compacted first when the request would
        exceed `threshold` of the model's context window. A failed summary is logged and
        the turn goes on with what it had."""
        settings = self.parts.config.models.agents.compaction
        view = compacted_view(history)
        window = self.context_window(model_ref)
        if not settings.auto or window is None or session_key in self._running:
            return for_model(view)
        defaults = self.parts.config.models.agents
        prompt = await self.parts.require_agent_files().system_prompt(agent, defaults.instructions)
        estimate = estimate_tokens([*for_model(view), asked], prompt)
        if estimate <= settings.threshold * window:
            return for_model(view)
        try:
            done = await self.compact(
                session_key, model_ref, keep_turns=settings.keep_turns, auto=True, messages=history
            )
        except AisopodError as exc:
            log.warning("automatic compaction of %s skipped: %s", session_key, exc.message)
            return for_model(view)
        except Exception:  # a failed append, say: the turn still goes on
            log.warning("automatic compaction of %s failed", session_key, exc_info=True)
            return for_model(view)
        return for_model(done.view)

    async def _charge(self, session_key: str, model_ref: str, entry_id: str, usage: Usage) -> None:
        """The summary call's tokens count like a run's (ledger, the agent's budget)."""
        try:
            await self.parts.usage.charge(
                run_id=f"compact-{entry_id}",
                session_key=session_key,
                agent_id=parse_session_key(session_key, self.parts.agents.default_id)[1],
                model_ref=model_ref,
                principal_id="system",
                status="compaction",
                usage=usage,
            )
        except Exception:  # the summary is written: a lost count must not undo it
            log.warning("could not count the usage of compacting %s", session_key, exc_info=True)

    async def _summarise(
        self, model_ref: str, old: list[dict[str, Any]], instructions: str | None
    ) -> tuple[str, Usage]:
        lines = [line for line in map(summary_line, old) if line is not None]
        ask = "Summarise this conversation."
        if instructions:
            ask += f"\nFocus on: {' '.join(instructions.split())}"
        request = [
            {"role": "system", "content": SUMMARY_SYSTEM},
            {
                "role": "user",
                "content": f"{ask}\n<conversation>\n" + "\n".join(lines) + "\n</conversation>",
            },
        ]
        timeout_s = self.parts.config.models.agents.compaction.timeout_ms / 1000
        pieces: list[str] = []
        usage = Usage()
        try:
            provider, model_id = self.parts.providers.resolve(model_ref)
            async with asyncio.timeout(timeout_s):
                async for event in provider.stream(ModelRequest(model_id, request)):
                    if isinstance(event, TextDelta):
                        pieces.append(event.text)
                    elif isinstance(event, Finish) and event.usage is not None:
                        usage = usage + event.usage
        except ProviderError as exc:
            raise CompactionFailed(
                f"the summary call to {model_ref} failed: {exc.message}", code="SUMMARY_FAILED"
            ) from None
        except TimeoutError:
            raise CompactionFailed(
                f"the summary call to {model_ref} took longer than {timeout_s:g} s",
                code="SUMMARY_FAILED",
            ) from None
        summary = "".join(pieces).strip()
        if not summary:
            raise CompactionFailed(
                f"the summary call to {model_ref} answered nothing", code="SUMMARY_FAILED"
            )
        return summary, usage


def compaction_handlers(parts: RuntimeService) -> dict[str, Handler]:
    async def compact(params: SessionsCompactParams, ctx: CallContext) -> SessionsCompactResult:
        key, agent_id = parse_session_key(params.key, parts.agents.default_id)
        entry = await parts.sessions.require(key)
        agent = await parts.agents.get(agent_id)
        if await _busy(parts, key):
            raise Conflict(
                f"session {key!r} has a run in progress; compact it once the run ended",
                code="SESSION_BUSY",
            )
        defaults = parts.config.models.agents
        model_ref = entry.model or agent.model or defaults.model
        keep = (
            params.keep_turns if params.keep_turns is not None else defaults.compaction.keep_turns
        )
        done = await parts.require_compactor().compact(
            key, model_ref, keep_turns=keep, instructions=params.instructions
        )
        if done.entry is None:
            return SessionsCompactResult(key=key, compacted=False, reason=done.reason)
        return SessionsCompactResult(
            key=key,
            compacted=True,
            entry_id=done.entry["id"],
            summary=done.entry["content"],
            compaction=CompactionRecord.model_validate(done.entry["compaction"]),
        )

    handlers: dict[str, Any] = {"sessions.compact": compact}
    return handlers


async def _busy(parts: RuntimeService, key: str) -> bool:
    """A run of the session is queued or running, on any replica. The lane is read too:
    this replica's board may not have seen a run another replica has just started."""
    runner = parts.require_runner()
    if runner.board.runs_of(key) or any(r.session_key == key for r in runner.local.values()):
        return True
    lane = await runner.lanes.peek(key)
    holder = lane[0].get("runId") if lane is not None else None
    if not holder:
        return False
    record = await runner.store.get(str(holder))
    return record is not None and not is_terminal(record) and not lease_expired(record)
