"""One session's detail on OpenClaw's usage page: `sessions.usage.timeseries` (its charts)
on our `sessions.usage.series`, `sessions.usage.logs` (its message log) on our
`sessions.usage.logs` (docs/openclaw.md, Usage). Pure functions only.

OpenClaw reads both from the session's transcript file: a point per assistant message
with usage, the whole file, at most 200 points; a log entry per user, assistant or tool
message, the newest `limit` (default 200, at most 1000). We read the usage ledger (a
point per run) over our longest window and the transcript as `chat.history` shows it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aisopod.errors import InvalidParams
from aisopod.sessionkey import canonical_session_key
from aisopod_ws_gateway.openclaw.usage import DAY_MS, MAX_DAYS

Params = dict[str, Any]
SERIES_POINTS = 200
"""OpenClaw's own cap on a session's chart points."""
LOGS_DEFAULT = 200
LOGS_MAX = 1000
LOG_TEXT_MAX = 2000
"""OpenClaw cuts a log entry's text at 2,000 characters (then "…")."""
_SESSION_IDS = uuid.UUID("6f1c3c52-4b8e-4e55-9d55-8f0c1a7e2b10")


def session_id(key: str) -> str:
    """OpenClaw names a session's transcript by a UUID that a reset rotates; our session
    keys never rotate, so the key names the transcript: a UUID derived from it, the same
    at every gateway and in every method."""
    return str(uuid.uuid5(_SESSION_IDS, key))


def _key(p: Params, detail: str) -> str:
    """The session OpenClaw names by `key` (with `agentId` when the key is not scoped
    to an agent); a short key without it is the default agent's, as ours are."""
    key = p.get("key")
    if not isinstance(key, str) or not key.strip():
        raise InvalidParams(f"key is required for {detail}", code="SESSION_KEY_REQUIRED")
    agent_id = p.get("agentId")
    if isinstance(agent_id, str) and agent_id.strip():
        return canonical_session_key(key.strip(), agent_id.strip())
    return key.strip()


def series_params(p: Params, now_ms: int | None = None) -> Params:
    """The whole session as OpenClaw charts it: our longest window up to now."""
    until = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        "key": _key(p, "timeseries"),
        "since": until - MAX_DAYS * DAY_MS,
        "until": until,
        "maxPoints": SERIES_POINTS,
    }


def usage_timeseries(ours: Any, ctx: Any) -> dict[str, Any]:
    """Our run points as OpenClaw's `{sessionId, points}`: `input` is the prompt no cache
    touched (as in `sessions.usage`), the running sums added."""
    points = []
    tokens, cost = 0, 0.0
    for point in ours["points"]:
        read, write = int(point["cacheReadTokens"]), int(point["cacheWriteTokens"])
        tokens += int(point["totalTokens"])
        cost += float(point["costUsd"])
        points.append({
            "timestamp": point["ts"],
            "input": max(int(point["promptTokens"]) - read - write, 0),
            "output": point["completionTokens"],
            "cacheRead": read,
            "cacheWrite": write,
            "totalTokens": point["totalTokens"],
            "cost": point["costUsd"],
            "cumulativeTokens": tokens,
            "cumulativeCost": cost,
        })  # fmt: skip
    return {"sessionId": session_id(ours["key"]), "points": points}


def logs_params(p: Params) -> Params:
    limit = p.get("limit")
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        count = max(1, min(int(limit), LOGS_MAX))
    else:
        count = LOGS_DEFAULT
    return {"key": _key(p, "logs"), "limit": count}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
    return "\n".join(t for t in texts if t)


def _log_text(message: dict[str, Any]) -> str:
    """A message's text as OpenClaw's log shows it: a tool's output after `[Tool: name]`
    and `[Tool Result]`, an answer's tool calls as `[Tool: name]` after its text."""
    parts = []
    if message["role"] == "tool":
        parts += [f"[Tool: {message.get('toolName') or 'tool'}]", "[Tool Result]"]
    text = _text(message.get("content"))
    if text:
        parts.append(text)
    parts += [f"[Tool: {call.get('name') or 'unknown'}]" for call in message.get("toolCalls") or []]
    out = "\n".join(parts).strip()
    return out if len(out) <= LOG_TEXT_MAX else out[:LOG_TEXT_MAX] + "…"


def usage_logs(ours: Any, ctx: Any) -> dict[str, Any]:
    """Our messages as OpenClaw's log entries `{timestamp, role, content, tokens?, cost?}`,
    oldest first. Its roles only (user, assistant, tool: a compaction's summary, a system
    message, is left out, as OpenClaw leaves out its own), and no empty text. A run's tokens
    and cost (from the ledger) go with its last assistant message: our runs are priced as
    a whole, OpenClaw prices each model call."""
    runs = {run["runId"]: run for run in ours["runs"]}
    messages = [m for m in ours["messages"] if m["role"] in ("user", "assistant", "tool")]
    priced_at: dict[str, int] = {}
    for at, message in enumerate(messages):
        if message["role"] == "assistant" and message.get("runId") in runs:
            priced_at[message["runId"]] = at
    logs = []
    for at, message in enumerate(messages):
        content = _log_text(message)
        if not content:
            continue
        entry: dict[str, Any] = {
            "timestamp": message["ts"],
            "role": message["role"],
            "content": content,
        }
        run_id = message.get("runId")
        if run_id is not None and priced_at.get(run_id) == at:
            run = runs[run_id]
            entry["tokens"] = run["totalTokens"]
            if run["priced"]:  # OpenClaw leaves a cost out when it has no price
                entry["cost"] = run["costUsd"]
        logs.append(entry)
    return {"logs": logs}
