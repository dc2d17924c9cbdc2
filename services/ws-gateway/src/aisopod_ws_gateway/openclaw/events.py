"""Our events under OpenClaw's names and shapes, one table (docs/openclaw.md, Events).

Each row: our event name → the OpenClaw event name and a pure reshaper of the payload
(None: same payload). Events without a row have no OpenClaw equivalent and are not sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

Reshape = Callable[[Any, int], Any]


def text_parts(content: Any) -> list[dict[str, Any]]:
    """Our message content (a string, or parts already) as OpenClaw content parts."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content if isinstance(content, str) else ""}]


def presence_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One of our presence entries as OpenClaw's `system-presence` row."""
    client = entry.get("client") if isinstance(entry.get("client"), dict) else {}
    assert isinstance(client, dict)
    mode = client.get("mode")
    name = client.get("displayName") or client.get("id") or "client"
    return {
        "host": name,
        "ip": entry.get("ip"),
        "version": client.get("version"),
        "platform": client.get("platform"),
        "deviceFamily": client.get("deviceFamily"),
        "mode": mode,
        "clientId": client.get("id"),
        "instanceId": client.get("instanceId") or entry.get("connId"),
        "roles": [entry.get("role")],
        "reason": "connect",
        "text": f"{name} ({mode}) connected",
        "ts": entry.get("lastSeenMs") or entry.get("since"),
    }


def _chat(payload: Any, ts: int) -> Any:
    if not isinstance(payload, dict):
        return payload
    out = dict(payload)
    message = payload.get("message")
    if isinstance(message, dict):
        out["message"] = {
            **message,
            "role": message.get("role", "assistant"),
            "content": text_parts(message.get("content")),
            "timestamp": message.get("ts", ts),
        }
    if "delta" in payload:
        out["deltaText"] = payload["delta"]
    return out


def _agent(payload: Any, ts: int) -> Any:
    return {**payload, "ts": ts} if isinstance(payload, dict) else payload


def _presence(payload: Any, ts: int) -> Any:
    entries = payload.get("presence") if isinstance(payload, dict) else payload
    if not isinstance(entries, list):
        return payload
    return {"presence": [presence_entry(e) for e in entries if isinstance(e, dict)]}


def _node_invoke_request(payload: Any, ts: int) -> Any:
    """To an OpenClaw node host the command's params travel as JSON text (`paramsJSON`)."""
    if not isinstance(payload, dict):
        return payload
    out = {k: v for k, v in payload.items() if k != "params"}
    params = payload.get("params")
    out["paramsJSON"] = None if params is None else orjson.dumps(params).decode()
    return out


EVENTS: dict[str, tuple[str, Reshape | None]] = {
    # ours                     OpenClaw name              reshape
    "chat.event": ("chat", _chat),
    "agent.event": ("agent", _agent),
    "presence.changed": ("presence", _presence),
    "health.changed": ("health", None),
    "cron.event": ("cron", None),
    "heartbeat": ("heartbeat", None),
    "tick": ("tick", None),
    "shutdown": ("shutdown", None),
    "connect.challenge": ("connect.challenge", None),
    "exec.approval.requested": ("exec.approval.requested", None),
    "exec.approval.resolved": ("exec.approval.resolved", None),
    "device.pair.requested": ("device.pair.requested", None),
    "device.pair.resolved": ("device.pair.resolved", None),
    "node.pair.requested": ("node.pair.requested", None),
    "node.pair.resolved": ("node.pair.resolved", None),
    "node.invoke.request": ("node.invoke.request", _node_invoke_request),
    "voicewake.changed": ("voicewake.changed", None),
    "update.available": ("update.available", None),
}
"""Not here, so not sent: `config.changed`, `node.event`, `update.progress`."""

OPENCLAW_EVENT_NAMES = sorted({name for name, _ in EVENTS.values()})
