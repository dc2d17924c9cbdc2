"""Session keys: `agent:<agentId>:<name>`; a key without the `agent:` prefix is the short
form and names a session of the default agent (`work` → `agent:main:work`). Every method
that takes a session key accepts both forms and answers with the canonical one."""

from __future__ import annotations

import re

from aisopod.errors import InvalidParams

AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def parse_session_key(key: str, default_agent: str) -> tuple[str, str]:
    """(canonical key, agent id) of a client-given session key."""
    if not key.startswith("agent:"):
        return f"agent:{default_agent}:{key}", default_agent
    _, agent_id, rest = [*key.split(":", 2), "", ""][:3]
    if not AGENT_ID.match(agent_id) or not rest:
        raise InvalidParams(
            f"session key {key!r} must be agent:<agentId>:<name>", code="BAD_SESSION_KEY"
        )
    return key, agent_id


def canonical_session_key(key: str, default_agent: str) -> str:
    return parse_session_key(key, default_agent)[0]
