"""The exec approval policy, pure: whether a command line needs an operator's approval.

The policy `{ask, allowlist}` lives in the runtime (`exec.approvals.get`/`set`, or a node's
own, `exec.approvals.node.get`/`set`, which replaces it for that node); the
runtime's `exec` tool asks for approval when this says so, and ws-gateway refuses a direct
`node.invoke` of the exec command (`system.run`) that would need one (an approval is only
given through the `exec` flow)."""

from __future__ import annotations

import fnmatch
import os
from typing import Any

EXEC_COMMAND = "system.run"
"""The node command that runs a process; its params are `{command: argv[], rawCommand}`."""


def command_allowed(allowlist: list[str], command: str, argv: list[str] | None = None) -> bool:
    words = command.split()
    first = argv[0] if argv else (words[0] if words else "")
    candidates = {command.strip(), first, os.path.basename(first)}
    return any(fnmatch.fnmatchcase(c, entry) for entry in allowlist for c in candidates if c)


def needs_approval(policy: dict[str, Any], command: str, argv: list[str] | None) -> bool:
    if policy.get("ask") == "off":
        return False
    if policy.get("ask") == "always":
        return True
    return not command_allowed(list(policy.get("allowlist") or []), command, argv)
