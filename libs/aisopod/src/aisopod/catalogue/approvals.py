"""approvals: exec approval requests and decisions, and the exec approval policy.

Agent tool calls that execute commands go through this flow; an unanswered request expires
to `deny`; `allow-always` adds the command to the allowlist.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from aisopod.catalogue.fields import (
    AgentId,
    EpochMs,
    Ident,
    NodeId,
    OkResult,
    SessionKey,
    TimeoutMs,
)
from aisopod.catalogue.spec import LONG_RUN_WAIT_S, MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

AP, A = Requirement.APPROVALS, Requirement.ADMIN
RT = ServiceName.RUNTIME

Decision = Literal["allow-once", "allow-always", "deny"]
AskPolicy = Literal["always", "on-miss", "off"]

CommandLine = Annotated[str, StringConstraints(min_length=1, max_length=65_536, pattern=r"\S")]
Arg = Annotated[str, StringConstraints(max_length=65_536)]
Path = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
AllowlistEntry = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
PolicyHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ExecApprovalRequestParams(Params):
    command: CommandLine
    argv: list[Arg] | None = Field(default=None, max_length=1024)
    cwd: Path | None = None
    node_id: NodeId | None = None
    agent_id: AgentId | None = None
    session_key: SessionKey | None = None
    timeout_ms: TimeoutMs = 120_000


class ExecApprovalRequestResult(Result):
    id: str
    expires_at_ms: EpochMs


class ExecApprovalWaitParams(Params):
    id: Ident
    timeout_ms: TimeoutMs | None = None


class ExecApprovalWaitResult(Result):
    """`decision` is null when the wait ended before a decision; it stays on the wire."""

    id: str
    decision: Decision | None

    def wire(self) -> dict[str, Any]:
        out = super().wire()
        out["decision"] = self.decision
        return out


class ExecApprovalResolveParams(Params):
    id: Ident
    decision: Decision


class ExecApprovalPolicy(Result):
    ask: AskPolicy
    allowlist: list[str]


class ExecApprovalsPolicyResult(ExecApprovalPolicy):
    """The gateway-wide policy and its `hash`: send the hash back as `baseHash` to make a
    write a compare-and-set."""

    hash: str


class ApprovalRequest(Result):
    """What an exec approval request asks to run, and for whom: the fields a pending request
    (`exec.approvals.pending`) and its announcement (`exec.approval.requested`) share."""

    id: str
    command: str
    argv: list[str] | None = None
    cwd: str | None = None
    node_id: str | None = None
    agent_id: str | None = None
    session_key: str | None = None


class PendingApproval(ApprovalRequest):
    """A request still waiting for a decision, as `exec.approval.requested` announced it."""

    run_id: str | None = None
    tool_call_id: str | None = None
    requested_by: str | None = None
    created_at_ms: EpochMs
    expires_at_ms: EpochMs


class ExecApprovalsPendingResult(Result):
    approvals: list[PendingApproval]


class ExecApprovalsSetParams(Params):
    """`baseHash`: the `hash` last read (exec.approvals.get); when given and no longer
    current, the write is refused with CONFLICT `POLICY_CHANGED`. Without it the policy is
    replaced whatever it has become."""

    ask: AskPolicy
    allowlist: list[AllowlistEntry] = Field(max_length=4096)
    base_hash: PolicyHash | None = None


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        "exec.approval.request",
        RT,
        AP,
        ExecApprovalRequestParams,
        ExecApprovalRequestResult,
        description="ask an operator to approve a command; broadcasts exec.approval.requested",
    ),
    MethodSpec(
        "exec.approval.waitDecision",
        RT,
        AP,
        ExecApprovalWaitParams,
        ExecApprovalWaitResult,
        description="wait for the decision",
        long_wait_s=LONG_RUN_WAIT_S,
    ),
    MethodSpec(
        "exec.approval.resolve",
        RT,
        AP,
        ExecApprovalResolveParams,
        OkResult,
        description="decide once; broadcasts exec.approval.resolved; again is CONFLICT",
    ),
    MethodSpec(
        "exec.approvals.pending",
        RT,
        AP,
        EmptyParams,
        ExecApprovalsPendingResult,
        description="requests still waiting for a decision, oldest first",
    ),
    MethodSpec(
        "exec.approvals.get",
        RT,
        A,
        EmptyParams,
        ExecApprovalsPolicyResult,
        description="policy",
    ),
    MethodSpec(
        "exec.approvals.set",
        RT,
        A,
        ExecApprovalsSetParams,
        ExecApprovalsPolicyResult,
        description="replace the policy; with `baseHash` only if unchanged since read",
    ),
)
