"""nodes: connected nodes, command invocation, node events and node pairing."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, StringConstraints

from aisopod.catalogue.fields import (
    CommandName,
    EpochMs,
    IdempotentParams,
    Ident,
    Name,
    NodeId,
    OkResult,
    Secret,
    TimeoutMs,
    absent_when_none,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.scopes import Requirement
from aisopod.services import ServiceName
from aisopod.wire import EmptyParams, Params, Result

R, W, P, N = Requirement.READ, Requirement.WRITE, Requirement.PAIRING, Requirement.NODE
WG, AU = ServiceName.WS_GATEWAY, ServiceName.AUTH

Platform = Annotated[str, StringConstraints(min_length=1, max_length=100)]
CapList = Annotated[list[CommandName], Field(max_length=256)]
CommandList = Annotated[list[CommandName], Field(max_length=1024)]
PairDecision = Literal["approved", "rejected"]


class NodeInfo(Result):
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    caps: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    connected: bool
    paired: bool


class NodeListResult(Result):
    nodes: list[NodeInfo]


class NodeIdParams(Params):
    node_id: NodeId


class NodeInvokeParams(IdempotentParams):
    node_id: NodeId
    command: CommandName
    params: JsonValue = None
    timeout_ms: TimeoutMs | None = None


class NodeInvokeFailure(Result):
    """What the node reported when `ok` is false (as it sent it)."""

    code: str | None = absent_when_none()
    message: str


class NodeInvokeResult(Result):
    ok: bool
    payload: JsonValue = None
    error: NodeInvokeFailure | None = absent_when_none()


class NodeInvokeError(Params):
    code: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    message: Annotated[str, StringConstraints(max_length=4096)]


class NodeInvokeResultParams(Params):
    """A node's answer to `node.invoke.request` `{id, ...}`."""

    id: Ident
    ok: bool
    payload: JsonValue = None
    error: NodeInvokeError | None = None


class NodeEventParams(Params):
    event: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S+$")]
    payload: JsonValue = None


class NodePairRequestParams(Params):
    node_id: NodeId
    display_name: Name | None = None
    platform: Platform | None = None
    caps: CapList | None = None
    commands: CommandList | None = None


class NodePairRequestResult(Result):
    request_id: str
    status: Literal["pending", "approved", "rejected"]


class NodePairRequest(Result):
    request_id: str
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    caps: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    requested_at: EpochMs


class PairedNode(Result):
    node_id: str
    display_name: str | None = None
    platform: str | None = None
    paired_at: EpochMs


class NodePairListResult(Result):
    pending: list[NodePairRequest]
    paired: list[PairedNode]


class PairRequestIdParams(Params):
    request_id: Ident


class NodePairDecisionResult(Result):
    """`token` only on approval: the node's credential, shown once."""

    request_id: str
    node_id: str
    decision: PairDecision
    token: str | None = Field(default=None, repr=False)


class NodePairVerifyParams(Params):
    node_id: NodeId
    token: Secret = Field(repr=False)


class NodeRenameParams(Params):
    node_id: NodeId
    display_name: Name


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec("node.list", WG, R, EmptyParams, NodeListResult, description="nodes"),
    MethodSpec("node.describe", WG, R, NodeIdParams, NodeInfo, description="one node"),
    MethodSpec(
        "node.invoke",
        WG,
        W,
        NodeInvokeParams,
        NodeInvokeResult,
        idempotent=True,
        description="run a command on a node, wherever it is connected",
    ),
    MethodSpec(
        "node.invoke.result", WG, N, NodeInvokeResultParams, OkResult, description="node reply"
    ),
    MethodSpec("node.event", WG, N, NodeEventParams, OkResult, description="node broadcast"),
    MethodSpec(
        "node.pair.request",
        AU,
        P,
        NodePairRequestParams,
        NodePairRequestResult,
        description="ask to pair",
    ),
    MethodSpec(
        "node.pair.list", AU, P, EmptyParams, NodePairListResult, description="pending, paired"
    ),
    MethodSpec(
        "node.pair.approve",
        AU,
        P,
        PairRequestIdParams,
        NodePairDecisionResult,
        description="approve a pairing request; returns the node token once",
    ),
    MethodSpec(
        "node.pair.reject",
        AU,
        P,
        PairRequestIdParams,
        NodePairDecisionResult,
        description="reject a pairing request",
    ),
    MethodSpec("node.pair.verify", AU, P, NodePairVerifyParams, OkResult, description="token"),
    MethodSpec("node.rename", AU, P, NodeRenameParams, NodeInfo, description="display name"),
    MethodSpec(
        "node.pair.remove",
        AU,
        P,
        NodeIdParams,
        OkResult,
        description="unpair a node; its token stops working at once",
    ),
)
