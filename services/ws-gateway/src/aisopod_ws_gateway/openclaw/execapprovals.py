"""OpenClaw's per-node exec approvals (`exec.approvals.node.get`/`set`, what `openclaw
approvals get|set|allowlist --node <id>` calls) on ours (docs/openclaw.md, Exec policy).
Rows of the adapter table, merged into `adapters.ADAPTERS`; pure functions only.

OpenClaw asks the node for an approvals *file* `{version: 1, defaults: {security, ask},
agents: {"*": {allowlist: [{pattern}]}}}` with a `hash` for compare-and-set; ours keeps a
node's `{ask, allowlist}` in the gateway. The mapping:

- ours → theirs: `off` is `security: full, ask: off`; `on-miss`/`always` are `security:
  allowlist` with that `ask`; the allowlist is agent `*`'s. A node without a policy of its
  own shows the gateway-wide one with `exists: false`, so an edit starts from what applies.
- theirs → ours: the defaults, then agent `*` over them. `security: full` is `off` unless
  `ask: always`; `security: deny` becomes `always` (we cannot refuse without asking, so
  every command asks); `security: allowlist, ask: off` (OpenClaw: misses are denied) becomes
  `on-miss` (misses ask). Never looser than what was asked for. Allowlist entries of other
  agents are refused: there is no per-agent policy here.
"""

from __future__ import annotations

from typing import Any

from aisopod.errors import InvalidParams
from aisopod_ws_gateway.openclaw.adapters import Adapter, Context, Params, keep

NO_POLICY_HASH = "0" * 64
"""The `hash` shown for a node without a policy of its own: OpenClaw's CLI needs one to
write back, and sending it back means "it had none" (our `baseHash: null`)."""

WILDCARD_AGENT = "*"


def approvals_file(policy: dict[str, Any]) -> dict[str, Any]:
    ask = policy.get("ask", "on-miss")
    defaults = (
        {"security": "full", "ask": "off"}
        if ask == "off"
        else {
            "security": "allowlist",
            "ask": ask,
        }
    )
    entries = [{"pattern": p} for p in policy.get("allowlist") or []]
    return {"version": 1, "defaults": defaults, "agents": {WILDCARD_AGENT: {"allowlist": entries}}}


def node_snapshot(ours: Any, ctx: Context) -> dict[str, Any]:
    own = ours.get("policy")
    return {
        "path": f"gateway:exec-approvals/node/{ours.get('nodeId')}",
        "exists": own is not None,
        "hash": ours.get("hash") or NO_POLICY_HASH,
        "file": approvals_file(own if own is not None else ours.get("effective") or {}),
    }


def _ask_of(security: Any, ask: Any) -> str:
    if security == "full":
        return "always" if ask == "always" else "off"
    if security == "deny":
        return "always"
    if ask == "always":
        return "always"
    return "on-miss"


def _patterns(agent: dict[str, Any]) -> list[str]:
    out = []
    for entry in agent.get("allowlist") or []:
        pattern = entry.get("pattern") if isinstance(entry, dict) else entry
        if isinstance(pattern, str) and pattern.strip():
            out.append(pattern.strip())
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def node_set_params(p: Params) -> Params:
    if "native" in p:
        raise InvalidParams(
            "host-native exec policies are not supported; send `file`", code="UNSUPPORTED_POLICY"
        )
    file = p.get("file")
    if not isinstance(file, dict):
        raise InvalidParams("exec approvals file is required", code="BAD_APPROVALS_FILE")
    defaults = _mapping(file.get("defaults"))
    agents = _mapping(file.get("agents"))
    others = sorted(a for a, body in agents.items() if a != WILDCARD_AGENT and body)
    if others:
        raise InvalidParams(
            f"per-agent exec policy is not supported here (agents {others}); "
            f'use agent "{WILDCARD_AGENT}"',
            code="UNSUPPORTED_POLICY",
        )
    wildcard = _mapping(agents.get(WILDCARD_AGENT))
    merged = {**defaults, **{k: v for k, v in wildcard.items() if k in ("security", "ask")}}
    out: Params = {
        "nodeId": p.get("nodeId"),
        "policy": {
            "ask": _ask_of(merged.get("security"), merged.get("ask")),
            "allowlist": _patterns(wildcard),
        },
    }
    if "baseHash" in p:
        base = p["baseHash"]
        out["baseHash"] = None if base == NO_POLICY_HASH else base
    return out


EXEC_APPROVAL_ADAPTERS: dict[str, Adapter] = {
    "exec.approvals.node.get": Adapter(
        "exec.approvals.node.get", params=keep("nodeId"), result=node_snapshot
    ),
    "exec.approvals.node.set": Adapter(
        "exec.approvals.node.set", params=node_set_params, result=node_snapshot
    ),
}
