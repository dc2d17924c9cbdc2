"""Node pairing: pending requests (KV `pairing`), paired nodes and their tokens (KV `nodes`).

`node.pair.approve` issues the node's token and returns it once; only its digest is kept
(on the node record and in the token index, so the node can present it at the handshake
with role `node`). A repeated request for a pending node merges into it.
"""

from __future__ import annotations

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from aisopod.catalogue.nodes import (
    NodePairRequest,
    NodePairRequestParams,
    PairedNode,
)
from aisopod.errors import Conflict, NotFound
from aisopod.scopes import Role
from aisopod_auth.kv import Entries
from aisopod_auth.records import CredentialKind, NodePairing, NodeRecord, RequestRef, TokenRecord
from aisopod_auth.tokens import TokenStore, digest, new_id, new_token, now_ms, same_digest


class NodeRegistry:
    def __init__(self, nodes: KeyValue, pairing: KeyValue, tokens: TokenStore) -> None:
        self.records = Entries(nodes, "node", NodeRecord)
        self.pending = Entries(pairing, "node", NodePairing)
        self.refs = Entries(pairing, "req", RequestRef)
        self.tokens = tokens

    async def get(self, node_id: str) -> NodeRecord | None:
        return await self.records.load(node_id)

    async def request(self, params: NodePairRequestParams) -> tuple[NodePairing, bool]:
        """The pending request (created or merged) and whether it is new."""
        created = False
        fields = params.model_dump(exclude_none=True, exclude={"node_id"})

        def merge(current: NodePairing | None) -> NodePairing:
            nonlocal created
            if current is None:
                created = True
                return NodePairing(
                    request_id=new_id("npair"),
                    node_id=params.node_id,
                    requested_at=now_ms(),
                    **fields,
                )
            return current.model_copy(update=fields)

        request = await self.pending.update(params.node_id, merge)
        assert request is not None
        await self.refs.put(request.request_id, RequestRef(kind="node", subject_id=params.node_id))
        return request, created

    async def _claim(self, request_id: str) -> NodePairing:
        ref = await self.refs.load(request_id)
        if ref is None or ref.kind != "node":
            raise NotFound(f"no pending node pairing request {request_id}")
        found = await self.pending.get(ref.subject_id)
        if found is None or found[0].request_id != request_id:
            raise NotFound(f"no pending node pairing request {request_id}")
        request, revision = found
        try:
            await self.pending.delete(ref.subject_id, revision)
        except KeyWrongLastSequenceError:
            raise Conflict("the request changed meanwhile; list and decide again") from None
        await self.refs.delete(request_id)
        return request

    async def approve(self, request_id: str) -> tuple[NodePairing, str]:
        """Pair the node; returns the request and the node's token (shown once)."""
        request = await self._claim(request_id)
        token = new_token()
        token_digest = digest(token)
        now = now_ms()
        replaced: list[str | None] = [None]

        def apply(current: NodeRecord | None) -> NodeRecord:
            replaced[0] = current.token_digest if current else None
            return NodeRecord(
                node_id=request.node_id,
                display_name=request.display_name,
                platform=request.platform,
                caps=request.caps,
                commands=request.commands,
                paired_at=now,
                request_id=request.request_id,
                token_digest=token_digest,
            )

        await self.records.update(request.node_id, apply)
        await self.tokens.register(
            token_digest,
            TokenRecord(
                kind=CredentialKind.NODE,
                role=Role.NODE.value,
                node_id=request.node_id,
                created_at=now,
            ),
        )
        if replaced[0] and replaced[0] != token_digest:
            await self.tokens.forget(replaced[0])
        return request, token

    async def reject(self, request_id: str) -> NodePairing:
        return await self._claim(request_id)

    async def verify(self, node_id: str, token: str) -> bool:
        record = await self.records.load(node_id)
        return record is not None and same_digest(record.token_digest, digest(token))

    async def remove(self, node_id: str) -> NodeRecord:
        """Forget the paired node and its token (NotFound when it is not paired)."""
        removed: list[NodeRecord] = []

        def apply(current: NodeRecord | None) -> None:
            if current is None:
                raise NotFound(f"no paired node {node_id}")
            removed[:] = [current]  # a CAS retry sees the newer record
            return None

        await self.records.update(node_id, apply)
        await self.tokens.forget(removed[0].token_digest)
        return removed[0]

    async def rename(self, node_id: str, display_name: str) -> NodeRecord:
        def apply(current: NodeRecord | None) -> NodeRecord:
            if current is None:
                raise NotFound(f"no paired node {node_id}")
            return current.model_copy(update={"display_name": display_name})

        record = await self.records.update(node_id, apply)
        assert record is not None
        return record

    async def listing(self) -> tuple[list[NodePairRequest], list[PairedNode]]:
        pending = [request_view(r) for r in await self.pending.all()]
        paired = [
            PairedNode(
                node_id=n.node_id,
                display_name=n.display_name,
                platform=n.platform,
                paired_at=n.paired_at,
            )
            for n in await self.records.all()
        ]
        pending.sort(key=lambda r: r.requested_at)
        paired.sort(key=lambda n: n.paired_at)
        return pending, paired


def request_view(request: NodePairing) -> NodePairRequest:
    return NodePairRequest(
        request_id=request.request_id,
        node_id=request.node_id,
        display_name=request.display_name,
        platform=request.platform,
        caps=request.caps,
        commands=request.commands,
        requested_at=request.requested_at,
    )
