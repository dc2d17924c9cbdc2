"""execnode: a node's own exec approval policy, overriding the gateway-wide one for that node.

The gateway-wide policy (`exec.approvals.get`/`set`) applies to every node without its own;
a node's policy, when set, replaces it whole (not merged) for commands run on that node.
Writes carry the `hash` they were based on, so two operators editing at once do not
overwrite each other silently.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aisopod.catalogue.approvals import AllowlistEntry, AskPolicy, ExecApprovalPolicy, PolicyHash
from aisopod.catalogue.fields import EpochMs, NodeId
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import Params, Result

A = Requirement.ADMIN
RT = ServiceName.RUNTIME


class NodePolicyInput(Params):
    ask: AskPolicy
    allowlist: list[AllowlistEntry] = Field(default_factory=list, max_length=4096)


class ExecApprovalsNodeGetParams(Params):
    node_id: NodeId


class ExecApprovalsNodeSetParams(Params):
    """`policy: null` removes the node's own policy (the gateway-wide one applies again).
    `baseHash`: the `hash` last read (null: the node had no policy of its own); when given
    and no longer current, the write is refused with CONFLICT `POLICY_CHANGED`."""

    node_id: NodeId
    policy: NodePolicyInput | None
    base_hash: PolicyHash | None = None


class ExecApprovalsNodeResult(Result):
    """The node's own policy (null when it has none), its hash, and the policy that applies
    to `system.run` on this node: `source` says whose it is."""

    node_id: str
    policy: ExecApprovalPolicy | None
    hash: str | None
    effective: ExecApprovalPolicy
    source: Literal["node", "gateway"]
    updated_at_ms: EpochMs | None = None
    updated_by: str | None = None

    def wire(self) -> dict[str, object]:
        # Nulls stay on the wire: "no policy of its own" is an answer, not a missing field.
        out = super().wire()
        for name in ("policy", "hash", "updatedAtMs", "updatedBy"):
            out.setdefault(name, None)
        return out


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "exec.approvals.node.get",
        RT,
        A,
        ExecApprovalsNodeGetParams,
        ExecApprovalsNodeResult,
        description="a node's own exec policy and the one in effect for it",
    ),
    MethodSpec(
        "exec.approvals.node.set",
        RT,
        A,
        ExecApprovalsNodeSetParams,
        ExecApprovalsNodeResult,
        description="set or clear a node's own exec policy (compare-and-set on baseHash)",
    ),
)
