"""agents.files and agent.identity: an agent's workspace files and how it presents itself.

The files (AGENTS.md, SOUL.md, …) live in KV `agentfiles`, size-limited, each write a new
revision; together they are the agent's system prompt (docs/runtime.md, Agent files).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from aisopod.catalogue.fields import AgentId, EpochMs, SessionKey, absent_when_none
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

R, A = Requirement.READ, Requirement.ADMIN
RT = ServiceName.RUNTIME

AGENT_FILE_NAMES: tuple[str, ...] = (
    "AGENTS.md",
    "SOUL.md",
    "IDENTITY.md",
    "USER.md",
    "TOOLS.md",
    "MEMORY.md",
)
"""Every file an agent may have, in the order they enter its system prompt."""
AgentFileName = Literal["AGENTS.md", "SOUL.md", "IDENTITY.md", "USER.md", "TOOLS.md", "MEMORY.md"]
AGENT_FILE_MAX_BYTES = 64 * 1024
"""One file's content, UTF-8 bytes: all six together stay well inside NATS' 1 MiB payload."""
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class AgentFile(Result):
    """`missing`: the agent has no such file (yet). `revision` is the write's sequence in
    KV `agentfiles` (the token for `expectedRevision`); `hash` the SHA-256 of the content's
    UTF-8 bytes. `content` only from get and set."""

    name: str
    missing: bool
    size: int | None = absent_when_none()
    revision: int | None = absent_when_none()
    hash: str | None = absent_when_none()
    updated_at: EpochMs | None = absent_when_none()
    content: str | None = absent_when_none()


class AgentsFilesListParams(Params):
    agent_id: AgentId


class AgentsFilesListResult(Result):
    agent_id: str
    files: list[AgentFile]


class AgentsFilesGetParams(Params):
    agent_id: AgentId
    name: AgentFileName


class AgentsFilesGetResult(Result):
    agent_id: str
    file: AgentFile


class AgentsFilesSetParams(Params):
    """`expectedRevision` (0: the file must not exist yet) or `expectedHash`: write only
    if the file is still what the caller read; without either, the write is unconditional.
    An empty `content` removes the file from the prompt (and from the list)."""

    agent_id: AgentId
    name: AgentFileName
    content: str
    expected_revision: int | None = None
    expected_hash: Sha256 | None = None


class AgentsFilesSetResult(Result):
    ok: bool = True
    agent_id: str
    file: AgentFile


class AgentIdentityParams(Params):
    """Whose identity: `agentId`, or the agent of `sessionKey`; neither: the default agent."""

    agent_id: AgentId | None = None
    session_key: SessionKey | None = None


class AgentIdentityResult(Result):
    """Each field from the agent's `identity` settings, else its IDENTITY.md (`Name:`,
    `Emoji:`, `Avatar:` lines), else (name) the agent's name; `*Source` says which."""

    agent_id: str
    name: str
    name_source: Literal["config", "workspace", "agent"]
    emoji: str | None = absent_when_none()
    avatar: str | None = absent_when_none()
    avatar_source: Literal["config", "workspace"] | None = absent_when_none()


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "agents.files.list",
        RT,
        R,
        AgentsFilesListParams,
        AgentsFilesListResult,
        description="an agent's workspace files",
    ),
    MethodSpec(
        "agents.files.get",
        RT,
        R,
        AgentsFilesGetParams,
        AgentsFilesGetResult,
        description="read an agent file",
    ),
    MethodSpec(
        "agents.files.set",
        RT,
        A,
        AgentsFilesSetParams,
        AgentsFilesSetResult,
        description="write an agent file (optimistic concurrency)",
    ),
    MethodSpec(
        "agent.identity.get",
        RT,
        R,
        AgentIdentityParams,
        AgentIdentityResult,
        description="an agent's name, emoji and avatar",
    ),
)
