"""OpenClaw node hosts and OpenClaw operators' node commands on our node methods
(docs/openclaw.md, Nodes). Rows of the adapter table, kept here and merged into
`adapters.ADAPTERS`; pure functions only.

A node host (`openclaw node run`) connects with role `node` and its `caps`/`commands`,
exactly as our own nodes do, so it becomes our node record and our invoke path (NATS,
any replica) reaches it. What differs is the wire: OpenClaw carries a command's params and
a result's payload as JSON text (`paramsJSON`, `payloadJSON`), and its operators expect
`{ok, nodeId, command, payload, payloadJSON}` back, or an error naming the node's own.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from aisopod.errors import InvalidParams, Unavailable
from aisopod_ws_gateway.openclaw.adapters import Absent, Adapter, Context, Params, keep, none

ERROR_MESSAGE_MAX = 4096
"""Our `node.invoke.result` error message limit; a longer one from a node is cut, not lost
with the whole result."""


def json_field(p: Params, text_name: str, name: str) -> Any:
    """A value OpenClaw sends as JSON text (`payloadJSON`), or plain (`payload`)."""
    text = p.get(text_name)
    if text is None:
        return p.get(name)
    if not isinstance(text, str):
        raise InvalidParams(f"{text_name} must be a string of JSON", code="BAD_JSON_FIELD")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidParams(f"{text_name} is not valid JSON", code="BAD_JSON_FIELD") from None


def invoke_result_params(p: Params) -> Params:
    """A node host's `node.invoke.result {id, nodeId, ok, payloadJSON | error}` as ours
    (the node id is the connection's own; ours does not take it)."""
    out: Params = {"id": p.get("id"), "ok": p.get("ok")}
    payload = json_field(p, "payloadJSON", "payload")
    if payload is not None:
        out["payload"] = payload
    error = p.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        out["error"] = {
            "code": error.get("code") if isinstance(error.get("code"), str) else None,
            "message": str(message if message is not None else "")[:ERROR_MESSAGE_MAX],
        }
    return out


def node_event_params(p: Params) -> Params:
    """`node.event {event, payloadJSON}` (host stats, exec notices) as ours."""
    return {"event": p.get("event"), "payload": json_field(p, "payloadJSON", "payload")}


def invoke_params(p: Params) -> Params:
    return keep("nodeId", "command", "params", "timeoutMs", "idempotencyKey")(p)


def invoke_answer(ours: Any, ctx: Context) -> dict[str, Any]:
    """Our `{ok, payload, error?}` as OpenClaw's answer. A command the node ran and that
    failed is an error reply naming the node's own error, as OpenClaw's gateway answers."""
    node_id, command = ctx.params.get("nodeId"), ctx.params.get("command")
    if not ours.get("ok"):
        failure = ours.get("error") or {}
        code = failure.get("code") or "ERROR"
        message = failure.get("message") or "the node command failed"
        raise Unavailable(
            f"{code}: {message}",
            code="NODE_COMMAND_FAILED",
            nodeError={"code": code, "message": message},
            nodeCommandDispatched=True,
        )
    payload = ours.get("payload")
    return {
        "ok": True,
        "nodeId": node_id,
        "command": command,
        "payload": payload,
        "payloadJSON": None if payload is None else orjson.dumps(payload).decode(),
    }


def node_row(node: dict[str, Any]) -> dict[str, Any]:
    """One of our node records with the names OpenClaw's node listing also has."""
    return {**node, "approvalState": "approved" if node.get("paired") else "unpaired"}


def node_list(ours: Any, ctx: Context) -> dict[str, Any]:
    return {"ts": int(time.time() * 1000), "nodes": [node_row(n) for n in ours.get("nodes", [])]}


def node_describe(ours: Any, ctx: Context) -> dict[str, Any]:
    return {"ts": int(time.time() * 1000), **node_row(ours)}


def pair_list(ours: Any, ctx: Context) -> dict[str, Any]:
    """`openclaw nodes pending` reads `ts` (the age column) on each pending request."""
    pending = [{**r, "ts": r.get("requestedAt")} for r in ours.get("pending", [])]
    return {**ours, "pending": pending}


def pair_decision(ours: Any, ctx: Context) -> dict[str, Any]:
    """OpenClaw answers `{requestId, node}`; ours also says the decision and, on approval,
    carries the node's token (shown once: it is kept, or it would be lost)."""
    return {**ours, "node": {"nodeId": ours.get("nodeId")}}


_by_request = keep("requestId")

NODE_ADAPTERS: dict[str, Adapter] = {
    # OpenClaw method        our method            params / result
    # -- from node hosts
    "node.invoke.result": Adapter("node.invoke.result", params=invoke_result_params),
    "node.event": Adapter("node.event", params=node_event_params),
    # -- from operators
    "node.list": Adapter("node.list", params=none, result=node_list),
    "node.describe": Adapter("node.describe", params=keep("nodeId"), result=node_describe),
    "node.invoke": Adapter("node.invoke", params=invoke_params, result=invoke_answer),
    "node.pair.list": Adapter("node.pair.list", params=none, result=pair_list),
    "node.pair.approve": Adapter("node.pair.approve", params=_by_request, result=pair_decision),
    "node.pair.reject": Adapter("node.pair.reject", params=_by_request, result=pair_decision),
    "node.pair.remove": Adapter("node.pair.remove", params=keep("nodeId")),
    "node.rename": Adapter("node.rename", params=keep("nodeId", "displayName")),
}  # fmt: skip

NODE_ABSENT: dict[str, Absent] = {
    # What a node host publishes after its connect, for features we do not have. Each is
    # answered `unknown method`, OpenClaw's answer without the feature, which the host reads
    # as "this gateway does not support it" and stops sending. Accepting them would tell the
    # host its offer was taken (docs/openclaw.md, Nodes).
    "node.runnerInventory.update": Absent(unknown=True),  # no worker hosting on nodes
    "node.skills.update": Absent(unknown=True),  # our agents never run a node's skills
    "node.pluginTools.update": Absent(unknown=True),  # nor a node's plugin tools
}  # fmt: skip
