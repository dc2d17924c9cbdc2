"""Which session an HTTP agent turn runs in (docs/protocol/http.md): header, `user`, or fresh.

Keys follow the runtime's `agent:<agentId>:<name>`. A `user` value becomes part of the key
when it is short and plain, else its hash (a key must stay a safe, bounded token).
"""

from __future__ import annotations

import hashlib
import re
import uuid

from aisopod.errors import InvalidParams

SESSION_HEADER = b"x-aisopod-session-key"
AGENT_HEADER = b"x-aisopod-agent-id"

_PLAIN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_KEY = re.compile(r"^[^\s\x00-\x1f\x7f]{1,512}$")
AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1").strip() or None
    return None


def check_agent_id(agent_id: str) -> str:
    if not AGENT_ID.match(agent_id):
        raise InvalidParams(f"invalid agent id {agent_id!r}", param="model")
    return agent_id


def canonical(key: str, agent_id: str) -> str:
    """The runtime's canonical form: a key without `agent:` belongs to `agent_id`
    (`work` → `agent:main:work`); events carry this form, so listeners must use it too."""
    return key if key.startswith("agent:") else f"agent:{agent_id}:{key}"


def session_key(agent_id: str, explicit: str | None, user: str | None, surface: str) -> str:
    if explicit:
        if not _KEY.match(explicit):
            raise InvalidParams("x-aisopod-session-key: no spaces or control characters, ≤ 512")
        return canonical(explicit, agent_id)
    if user:
        name = user if _PLAIN.match(user) else hashlib.sha256(user.encode()).hexdigest()[:32]
        return f"agent:{agent_id}:{surface}-user:{name}"
    return f"agent:{agent_id}:{surface}:{uuid.uuid4().hex}"
