"""The catalogue methods auth owns: device.* and node.pair.*, node.rename.

Handlers raise; the RPC wrapper formats errors. Every decision is announced (pairing
events), and every credential that stops working closes the connections that used it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aisopod.catalogue.devices import (
    DeviceIdParams,
    DevicePairDecisionParams,
    DevicePairDecisionResult,
    DevicePairListResult,
    DeviceTokenRevokeParams,
    DeviceTokenRevokeResult,
    DeviceTokenRotateParams,
    DeviceTokenRotateResult,
)
from aisopod.catalogue.fields import OkResult
from aisopod.catalogue.nodes import (
    NodeIdParams,
    NodeInfo,
    NodePairDecisionResult,
    NodePairListResult,
    NodePairRequestParams,
    NodePairRequestResult,
    NodePairVerifyParams,
    NodeRenameParams,
    PairRequestIdParams,
)
from aisopod.contracts.auth import CloseConnections
from aisopod.rpc import CallContext, Handler
from aisopod.wire import EmptyParams
from aisopod_auth.devices import DeviceRegistry
from aisopod_auth.nodes import NodeRegistry
from aisopod_auth.notify import Notifier


class AuthMethods:
    def __init__(self, devices: DeviceRegistry, nodes: NodeRegistry, notifier: Notifier) -> None:
        self.devices = devices
        self.nodes = nodes
        self.notifier = notifier

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "device.pair.list": self.device_pair_list,
            "device.pair.approve": self.device_pair_approve,
            "device.pair.reject": self.device_pair_reject,
            "device.pair.remove": self.device_pair_remove,
            "device.token.rotate": self.device_token_rotate,
            "device.token.revoke": self.device_token_revoke,
            "node.pair.request": self.node_pair_request,
            "node.pair.list": self.node_pair_list,
            "node.pair.approve": self.node_pair_approve,
            "node.pair.reject": self.node_pair_reject,
            "node.pair.verify": self.node_pair_verify,
            "node.rename": self.node_rename,
            "node.pair.remove": self.node_pair_remove,
        }

    # -- devices ------------------------------------------------------------------------
    async def device_pair_list(self, _: EmptyParams, ctx: CallContext) -> DevicePairListResult:
        pending, paired = await self.devices.listing()
        return DevicePairListResult(pending=pending, paired=paired)

    async def device_pair_approve(
        self, params: DevicePairDecisionParams, ctx: CallContext
    ) -> DevicePairDecisionResult:
        scopes = [s.value for s in params.scopes] if params.scopes is not None else None
        request, _ = await self.devices.approve(params.request_id, scopes)
        await self.notifier.device_resolved(request, "approved")
        return DevicePairDecisionResult(
            request_id=request.request_id, device_id=request.device_id, decision="approved"
        )

    async def device_pair_reject(
        self, params: DevicePairDecisionParams, ctx: CallContext
    ) -> DevicePairDecisionResult:
        request = await self.devices.reject(params.request_id)
        await self.notifier.device_resolved(request, "rejected")
        return DevicePairDecisionResult(
            request_id=request.request_id, device_id=request.device_id, decision="rejected"
        )

    async def device_pair_remove(self, params: DeviceIdParams, ctx: CallContext) -> OkResult:
        await self.devices.remove(params.device_id)
        await self.notifier.close(
            CloseConnections(device_id=params.device_id, reason="device removed")
        )
        return OkResult(ok=True)

    async def device_token_rotate(
        self, params: DeviceTokenRotateParams, ctx: CallContext
    ) -> DeviceTokenRotateResult:
        role = params.role.value
        scopes = [s.value for s in params.scopes] if params.scopes is not None else None
        issued = await self.devices.issue(params.device_id, role, scopes)
        assert issued is not None  # only a first delivery can find nothing to do
        token, record, _ = issued
        await self._close_token_users(params.device_id, role, "device token rotated")
        return DeviceTokenRotateResult(
            device_id=params.device_id,
            role=params.role,
            token=token,
            scopes=record.roles[role].token_scopes,
        )

    async def device_token_revoke(
        self, params: DeviceTokenRevokeParams, ctx: CallContext
    ) -> DeviceTokenRevokeResult:
        role = params.role.value
        revoked_at = await self.devices.revoke(params.device_id, role)
        await self._close_token_users(params.device_id, role, "device token revoked")
        return DeviceTokenRevokeResult(revoked_at=revoked_at)

    async def _close_token_users(self, device_id: str, role: str, reason: str) -> None:
        # Only the connections that authenticated with the device's token: a connection
        # of the same device signed in with a shared secret did not use it.
        await self.notifier.close(
            CloseConnections(
                device_id=device_id, role=role, principal_id=f"device:{device_id}", reason=reason
            )
        )

    # -- nodes --------------------------------------------------------------------------
    async def node_pair_request(
        self, params: NodePairRequestParams, ctx: CallContext
    ) -> NodePairRequestResult:
        paired = await self.nodes.get(params.node_id)
        if paired is not None:
            return NodePairRequestResult(request_id=paired.request_id, status="approved")
        request, created = await self.nodes.request(params)
        if created:
            await self.notifier.node_requested(request)
        return NodePairRequestResult(request_id=request.request_id, status="pending")

    async def node_pair_list(self, _: EmptyParams, ctx: CallContext) -> NodePairListResult:
        pending, paired = await self.nodes.listing()
        return NodePairListResult(pending=pending, paired=paired)

    async def node_pair_approve(
        self, params: PairRequestIdParams, ctx: CallContext
    ) -> NodePairDecisionResult:
        request, token = await self.nodes.approve(params.request_id)
        await self.notifier.node_resolved(request, "approved")
        return NodePairDecisionResult(
            request_id=request.request_id, node_id=request.node_id, decision="approved", token=token
        )

    async def node_pair_reject(
        self, params: PairRequestIdParams, ctx: CallContext
    ) -> NodePairDecisionResult:
        request = await self.nodes.reject(params.request_id)
        await self.notifier.node_resolved(request, "rejected")
        return NodePairDecisionResult(
            request_id=request.request_id, node_id=request.node_id, decision="rejected"
        )

    async def node_pair_verify(self, params: NodePairVerifyParams, ctx: CallContext) -> OkResult:
        return OkResult(ok=await self.nodes.verify(params.node_id, params.token))

    async def node_pair_remove(self, params: NodeIdParams, ctx: CallContext) -> OkResult:
        await self.nodes.remove(params.node_id)
        # The order device removal publishes: ws-gateway closes the node's sockets and
        # http-api forgets the tokens it verified, so the node's token fails at once.
        await self.notifier.close(
            CloseConnections(principal_id=f"node:{params.node_id}", reason="node removed")
        )
        return OkResult(ok=True)

    async def node_rename(self, params: NodeRenameParams, ctx: CallContext) -> NodeInfo:
        record = await self.nodes.rename(params.node_id, params.display_name)
        # Auth knows pairing, not sockets: `connected` is the ws-gateway's to report
        # (node.describe); here it is only "not known to be connected".
        return NodeInfo(
            node_id=record.node_id,
            display_name=record.display_name,
            platform=record.platform,
            caps=record.caps,
            commands=record.commands,
            connected=False,
            paired=True,
        )
