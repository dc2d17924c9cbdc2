"""An agent's workspace files (AGENTS.md, SOUL.md, …), its system prompt and its identity.

All files of one agent are one JSON document in KV `agents`, key `files.<agentId>`:
`{files: {NAME: {content, revision, hash, size, updatedAt} | {revision, removed: true,
updatedAt}}}`. One value per agent, so a turn reads its whole prompt with one get, and a
write is one compare-and-set on the document (retried when another file of the agent
changed meanwhile), which makes each file's `revision` check atomic. A file's revision
counts its writes (1 for the first); a removed file keeps its revision as a tombstone so a
later writer cannot mistake a new file for the one it read (no ABA). Limits: 64 KiB per
file, 512 KiB for the document — far inside NATS' 1 MiB payload.

The system prompt of a turn is the agent's instructions (or the default ones), then every
non-empty file in `AGENT_FILE_NAMES` order under `## NAME` (docs/runtime.md, Agent files).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.agentfiles import (
    AGENT_FILE_MAX_BYTES,
    AGENT_FILE_NAMES,
    AgentFile,
    AgentIdentityParams,
    AgentIdentityResult,
    AgentsFilesGetParams,
    AgentsFilesGetResult,
    AgentsFilesListParams,
    AgentsFilesListResult,
    AgentsFilesSetParams,
    AgentsFilesSetResult,
)
from aisopod.catalogue.agents import Agent
from aisopod.errors import Conflict, InvalidParams
from aisopod.rpc import CallContext, Handler
from aisopod.sessionkey import parse_session_key
from aisopod_runtime.agents import AgentStore
from aisopod_runtime.kvview import get_json

FILE_MAX_BYTES = AGENT_FILE_MAX_BYTES
DOCUMENT_MAX_BYTES = 512 * 1024
WRITE_ATTEMPTS = 8
FILES_HEADING = "# Agent files"


def files_key(agent_id: str) -> str:
    return f"files.{agent_id}"


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def _file(name: str, stored: dict[str, Any] | None, *, content: bool) -> AgentFile:
    if stored is None or stored.get("removed"):
        revision = stored.get("revision") if stored else None
        return AgentFile(name=name, missing=True, revision=revision)
    return AgentFile(
        name=name,
        missing=False,
        size=stored.get("size"),
        revision=stored.get("revision"),
        hash=stored.get("hash"),
        updated_at=stored.get("updatedAt"),
        content=stored.get("content") if content else None,
    )


class AgentFiles:
    def __init__(self, kv: KeyValue, agents: AgentStore) -> None:
        self.kv = kv
        self.agents = agents

    async def _files(self, agent_id: str) -> tuple[dict[str, dict[str, Any]], int | None]:
        """The agent's stored files and the document's KV revision (None: no document)."""
        found = await get_json(self.kv, files_key(agent_id))
        if found is None:
            return {}, None
        document, revision = found
        files = document.get("files")
        return (files if isinstance(files, dict) else {}), revision

    async def listing(self, agent_id: str) -> list[AgentFile]:
        await self.agents.get(agent_id)  # NOT_FOUND for an unknown agent
        files, _ = await self._files(agent_id)
        return [_file(name, files.get(name), content=False) for name in AGENT_FILE_NAMES]

    async def get(self, agent_id: str, name: str) -> AgentFile:
        await self.agents.get(agent_id)
        files, _ = await self._files(agent_id)
        return _file(name, files.get(name), content=True)

    async def set(self, params: AgentsFilesSetParams) -> AgentFile:
        size = len(params.content.encode())
        if size > FILE_MAX_BYTES:
            raise InvalidParams(
                f"{params.name} is {size} bytes; an agent file holds at most {FILE_MAX_BYTES}",
                code="FILE_TOO_LARGE",
                limit=FILE_MAX_BYTES,
                size=size,
            )
        await self.agents.get(params.agent_id)
        key = files_key(params.agent_id)
        for _ in range(WRITE_ATTEMPTS):  # compare-and-set on the whole document
            files, doc_revision = await self._files(params.agent_id)
            current = files.get(params.name)
            self._check_expected(params, current)
            revision = int(current.get("revision", 0)) + 1 if current else 1
            now = int(time.time() * 1000)
            if params.content:
                stored: dict[str, Any] = {
                    "content": params.content,
                    "revision": revision,
                    "hash": content_hash(params.content),
                    "size": size,
                    "updatedAt": now,
                }
            else:  # empty: out of the prompt and the list, its revision kept (tombstone)
                stored = {"revision": revision, "removed": True, "updatedAt": now}
            body = codec.dumps({"files": {**files, params.name: stored}})
            if len(body) > DOCUMENT_MAX_BYTES:
                raise InvalidParams(
                    f"the files of agent {params.agent_id!r} would take {len(body)} bytes "
                    f"together; at most {DOCUMENT_MAX_BYTES}",
                    code="FILES_TOO_LARGE",
                    limit=DOCUMENT_MAX_BYTES,
                )
            try:
                if doc_revision is None:
                    await self.kv.create(key, body)
                else:
                    await self.kv.update(key, body, last=doc_revision)
            except KeyWrongLastSequenceError:
                continue  # another write got in first: check the expectation again
            return _file(params.name, stored, content=True)
        raise Conflict("the agent's files changed concurrently; retry", code="CONCURRENT_UPDATE")

    @staticmethod
    def _check_expected(params: AgentsFilesSetParams, current: dict[str, Any] | None) -> None:
        revision = int(current.get("revision", 0)) if current else 0
        digest = None if current is None or current.get("removed") else current.get("hash")
        stale = (params.expected_revision is not None and params.expected_revision != revision) or (
            params.expected_hash is not None and params.expected_hash.lower() != digest
        )
        if stale:
            raise Conflict(
                f"{params.name} changed since it was read (now revision {revision})",
                code="FILE_CHANGED",
                name=params.name,
                currentRevision=revision,
                currentHash=digest,
            )

    async def forget(self, agent_id: str) -> None:
        """Remove every file of an agent (agents.delete)."""
        await self.kv.purge(files_key(agent_id))

    async def contents(self, agent_id: str) -> list[tuple[str, str]]:
        """(name, content) of the agent's non-empty files, in prompt order."""
        files, _ = await self._files(agent_id)
        out = []
        for name in AGENT_FILE_NAMES:
            stored = files.get(name)
            if stored and not stored.get("removed") and str(stored.get("content", "")).strip():
                out.append((name, str(stored["content"])))
        return out

    async def system_prompt(self, agent: Agent, default_instructions: str) -> str:
        return compose_prompt(
            agent.instructions or default_instructions, await self.contents(agent.id)
        )

    async def identity(self, agent: Agent) -> AgentIdentityResult:
        files, _ = await self._files(agent.id)
        stored = files.get("IDENTITY.md")
        text = str(stored.get("content", "")) if stored and not stored.get("removed") else ""
        return resolve_identity(agent, parse_identity(text))


def compose_prompt(instructions: str, files: list[tuple[str, str]]) -> str:
    """The instructions, then each file under its own heading (the order given)."""
    if not files:
        return instructions
    parts = [instructions.rstrip(), "", FILES_HEADING, ""]
    for name, content in files:
        parts += [f"## {name}", "", content.strip(), ""]
    return "\n".join(parts).rstrip() + "\n"


_MARKUP = "*_` \t"


def parse_identity(text: str) -> dict[str, str]:
    """`Name:`, `Emoji:`, `Avatar:` lines of an IDENTITY.md (list dashes and markdown
    emphasis allowed; a value wholly in parentheses is a template's placeholder)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        cleaned = line.strip().removeprefix("-").strip()
        label, sep, value = cleaned.partition(":")
        if not sep:
            continue
        label = label.strip(_MARKUP).lower()
        value = value.strip(_MARKUP)
        if label not in ("name", "emoji", "avatar") or not value or label in found:
            continue
        if value.startswith("(") and value.endswith(")"):
            continue
        found[label] = value
    return found


def resolve_identity(agent: Agent, from_file: dict[str, str]) -> AgentIdentityResult:
    settings = agent.identity or {}
    if settings.get("name"):
        name, name_source = settings["name"], "config"
    elif from_file.get("name"):
        name, name_source = from_file["name"], "workspace"
    else:
        name, name_source = agent.name, "agent"
    avatar, avatar_source = None, None
    if settings.get("avatar"):
        avatar, avatar_source = settings["avatar"], "config"
    elif from_file.get("avatar"):
        avatar, avatar_source = from_file["avatar"], "workspace"
    return AgentIdentityResult(
        agent_id=agent.id,
        name=name,
        name_source=name_source,
        emoji=settings.get("emoji") or from_file.get("emoji"),
        avatar=avatar,
        avatar_source=avatar_source,
    )


def agent_file_handlers(files: AgentFiles) -> dict[str, Handler]:
    agents = files.agents

    async def list_(params: AgentsFilesListParams, ctx: CallContext) -> AgentsFilesListResult:
        return AgentsFilesListResult(
            agent_id=params.agent_id, files=await files.listing(params.agent_id)
        )

    async def get(params: AgentsFilesGetParams, ctx: CallContext) -> AgentsFilesGetResult:
        found = await files.get(params.agent_id, params.name)
        return AgentsFilesGetResult(agent_id=params.agent_id, file=found)

    async def set_(params: AgentsFilesSetParams, ctx: CallContext) -> AgentsFilesSetResult:
        return AgentsFilesSetResult(agent_id=params.agent_id, file=await files.set(params))

    async def identity(params: AgentIdentityParams, ctx: CallContext) -> AgentIdentityResult:
        agent_id = params.agent_id
        if params.session_key is not None:
            _, key_agent = parse_session_key(params.session_key, agents.default_id)
            if agent_id is not None and agent_id != key_agent:
                raise InvalidParams(
                    f"session {params.session_key!r} belongs to agent {key_agent!r}",
                    code="AGENT_MISMATCH",
                )
            agent_id = key_agent
        agent = await agents.get(agent_id or agents.default_id)
        return await files.identity(agent)

    handlers: dict[str, Any] = {
        "agents.files.list": list_,
        "agents.files.get": get,
        "agents.files.set": set_,
        "agent.identity.get": identity,
    }
    return handlers
