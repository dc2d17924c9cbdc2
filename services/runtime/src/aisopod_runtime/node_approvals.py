"""Per-node exec policy: `exec.approvals.node.get`/`set`, in KV `approvals` at
`node.<kv_token(nodeId)>` beside the gateway-wide `policy`.

Precedence: a node with a policy of its own uses it instead of the gateway-wide policy,
whole (ask and allowlist), for every `system.run` on that node: the runtime's `exec` tool
and ws-gateway's check of a direct `node.invoke` both read `effective`. A node without one
follows the gateway-wide policy. `allow-always` on a request for such a node adds the
command to the node's allowlist, not the gateway's.

A record is `{ask, allowlist, updatedAtMs, updatedBy}`; its `hash` is the sha256 of the
canonical JSON of `{ask, allowlist}`. A write compares `baseHash` with the stored record
and then writes with a KV compare-and-set on the revision it read, so a concurrent write
from another replica also ends in CONFLICT `POLICY_CHANGED` rather than a lost update.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod import codec
from aisopod.catalogue.execnode import (
    ExecApprovalsNodeGetParams,
    ExecApprovalsNodeResult,
    ExecApprovalsNodeSetParams,
)
from aisopod.errors import Conflict
from aisopod.rpc import CallContext, Handler
from aisopod_runtime.kvview import get_json, kv_token

ALLOW_ALWAYS_ATTEMPTS = 8


def node_policy_key(node_id: str) -> str:
    return f"node.{kv_token(node_id)}"


def policy_hash(policy: dict[str, Any]) -> str:
    body = {"ask": policy["ask"], "allowlist": list(policy["allowlist"])}
    return hashlib.sha256(codec.dumps(body)).hexdigest()


def _policy_of(record: dict[str, Any]) -> dict[str, Any]:
    return {"ask": record["ask"], "allowlist": list(record.get("allowlist") or [])}


async def node_policy(kv: KeyValue, node_id: str) -> tuple[dict[str, Any], int] | None:
    """(record, revision) of the node's own policy, or None when it has none."""
    return await get_json(kv, node_policy_key(node_id))


async def add_to_node_allowlist(kv: KeyValue, node_id: str, command: str) -> bool:
    """`allow-always` for a node with its own policy: True when the node has one (and the
    command is now in it), False when the gateway-wide allowlist should take it."""
    key = node_policy_key(node_id)
    for _ in range(ALLOW_ALWAYS_ATTEMPTS):
        found = await get_json(kv, key)
        if found is None:
            return False
        record, revision = found
        if command in record.get("allowlist", []):
            return True
        record = {**record, "allowlist": [*record.get("allowlist", []), command]}
        try:
            await kv.update(key, codec.dumps(record), last=revision)
            return True
        except KeyWrongLastSequenceError:
            continue
    return True


class NodePolicies:
    def __init__(self, kv: KeyValue, gateway_policy: Any) -> None:
        self.kv = kv
        self._gateway_policy = gateway_policy  # async () -> the gateway-wide policy

    async def effective(self, node_id: str | None) -> dict[str, Any]:
        if node_id:
            found = await node_policy(self.kv, node_id)
            if found is not None:
                return _policy_of(found[0])
        policy: dict[str, Any] = await self._gateway_policy()
        return policy

    async def describe(self, node_id: str) -> ExecApprovalsNodeResult:
        found = await node_policy(self.kv, node_id)
        if found is None:
            return ExecApprovalsNodeResult(
                node_id=node_id,
                policy=None,
                hash=None,
                effective=await self._gateway_policy(),
                source="gateway",
            )
        record = found[0]
        own = _policy_of(record)
        return ExecApprovalsNodeResult.model_validate(
            {
                "nodeId": node_id,
                "policy": own,
                "hash": policy_hash(own),
                "effective": own,
                "source": "node",
                "updatedAtMs": record.get("updatedAtMs"),
                "updatedBy": record.get("updatedBy"),
            }
        )

    async def set(
        self, params: ExecApprovalsNodeSetParams, principal_id: str
    ) -> ExecApprovalsNodeResult:
        key = node_policy_key(params.node_id)
        found = await node_policy(self.kv, params.node_id)
        current_hash = policy_hash(_policy_of(found[0])) if found else None
        if "base_hash" in params.model_fields_set and params.base_hash != current_hash:
            raise _changed()
        try:
            if params.policy is None:
                if found is not None:
                    await self.kv.delete(key, last=found[1])
            else:
                record = {
                    "ask": params.policy.ask,
                    "allowlist": list(dict.fromkeys(params.policy.allowlist)),
                    "updatedAtMs": int(time.time() * 1000),
                    "updatedBy": principal_id,
                }
                if found is None:
                    await self.kv.create(key, codec.dumps(record))
                else:
                    await self.kv.update(key, codec.dumps(record), last=found[1])
        except KeyWrongLastSequenceError:
            raise _changed() from None
        return await self.describe(params.node_id)


def _changed() -> Conflict:
    return Conflict(
        "the node's exec policy changed since it was read; read it again "
        "(exec.approvals.node.get) and retry",
        code="POLICY_CHANGED",
    )


def node_approval_handlers(policies: NodePolicies) -> dict[str, Handler]:
    async def get(params: ExecApprovalsNodeGetParams, ctx: CallContext) -> ExecApprovalsNodeResult:
        return await policies.describe(params.node_id)

    async def set_(params: ExecApprovalsNodeSetParams, ctx: CallContext) -> ExecApprovalsNodeResult:
        return await policies.set(params, ctx.principal.id)

    return {"exec.approvals.node.get": get, "exec.approvals.node.set": set_}
