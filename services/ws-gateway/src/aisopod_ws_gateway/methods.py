"""The methods ws-gateway owns (system and nodes in docs/protocol/methods.md), both ways in.

On a WebSocket connection every owned method is answered here, without a NATS hop. The
cluster-wide ones (`system-presence`, `node.list`, `node.describe`, `node.invoke`) are
also served on the bus for other services (the runtime's agent tools invoke nodes);
`connect`, `health`, `subscribe`, `unsubscribe`, `node.invoke.result` and `node.event`
only make sense on a connection and are skipped there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from aisopod.catalogue.nodes import (
    NodeEventParams,
    NodeIdParams,
    NodeInfo,
    NodeInvokeParams,
    NodeInvokeResult,
    NodeInvokeResultParams,
    NodeListResult,
)
from aisopod.catalogue.spec import MethodSpec
from aisopod.catalogue.system import PresenceList, SubscribeParams
from aisopod.errors import AisopodError, invalid_params_from_validation
from aisopod.jsonrpc import Call, RequestId
from aisopod.rpc import CallContext
from aisopod.sessionkey import canonical_session_key
from aisopod_ws_gateway.codec import Codec
from aisopod_ws_gateway.dispatch import LocalHandler, Outcome, Reply, error_reply, ok_reply

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

CONNECTION_ONLY = (
    "connect",
    "health",
    "subscribe",
    "unsubscribe",
    "node.invoke.result",
    "node.event",
)


def validated_params(spec: MethodSpec, call: Call) -> BaseModel:
    """The call's params as the method's model; absent params count as `{}`."""
    raw = call.params if call.params is not None else {}
    if not isinstance(raw, dict):
        raise invalid_params_from_validation([{"loc": ["params"], "msg": "must be an object"}])
    try:
        return spec.params.model_validate(raw)
    except ValidationError as exc:
        raise invalid_params_from_validation(exc.errors()) from None


def _sync(fn: Callable[[Connection, Any], Any]) -> LocalHandler:
    def handler(conn: Connection, call: Call, spec: MethodSpec, codec: Codec) -> Outcome:
        try:
            return ok_reply(codec, call.id, fn(conn, validated_params(spec, call)))
        except AisopodError as exc:
            return error_reply(codec, call.id, exc)

    return handler


def _async(fn: Callable[[Connection, Any], Awaitable[Any]]) -> LocalHandler:
    def handler(conn: Connection, call: Call, spec: MethodSpec, codec: Codec) -> Outcome:
        try:
            params = validated_params(spec, call)
        except AisopodError as exc:
            return error_reply(codec, call.id, exc)
        return _run(codec, fn(conn, params), call.id)

    return handler


async def _run(codec: Codec, work: Awaitable[Any], request_id: RequestId) -> Reply:
    try:
        return ok_reply(codec, request_id, await work)
    except AisopodError as exc:
        return error_reply(codec, request_id, exc)


def connection_handlers(gateway: Gateway) -> dict[str, LocalHandler]:
    """Handlers of owned methods for requests arriving on a WebSocket connection."""
    nodes = gateway.nodes

    def health(conn: Connection, call: Call, spec: MethodSpec, codec: Codec) -> Outcome:
        # The hottest request there is: no model, the cached snapshot spliced in as bytes.
        if call.params:
            try:
                validated_params(spec, call)
            except AisopodError as exc:
                return error_reply(codec, call.id, exc)
        return gateway.health_reply(codec, call.id), None

    def session_keys(params: SubscribeParams) -> list[str] | None:
        # Events carry canonical keys; the short form ("s1") names the default agent's.
        if params.session_keys is None:
            return None
        default_agent = gateway.full_config.models.agents.default_id
        return [canonical_session_key(key, default_agent) for key in params.session_keys]

    def subscribe(conn: Connection, params: SubscribeParams) -> Any:
        return gateway.resubscribe(
            conn, conn.subscription.subscribe(params.events, session_keys(params))
        )

    def unsubscribe(conn: Connection, params: SubscribeParams) -> Any:
        return gateway.resubscribe(
            conn, conn.subscription.unsubscribe(params.events, session_keys(params))
        )

    def presence(conn: Connection, params: Any) -> Any:
        return gateway.presence.entries()

    async def node_list(conn: Connection, params: Any) -> Any:
        return {"nodes": await nodes.listing()}

    async def node_describe(conn: Connection, params: NodeIdParams) -> Any:
        return await nodes.describe(params.node_id)

    async def node_invoke(conn: Connection, params: NodeInvokeParams) -> Any:
        assert conn.principal is not None
        await nodes.check_exec_policy(params)
        return await nodes.invoke(params, conn.principal)

    def node_invoke_result(conn: Connection, params: NodeInvokeResultParams) -> Any:
        nodes.result(conn, params)
        return {"ok": True}

    async def node_event(conn: Connection, params: NodeEventParams) -> Any:
        await gateway.host.bus.publish_event(
            "node.event",
            {"nodeId": conn.node_id, "event": params.event, "payload": params.payload},
        )
        return {"ok": True}

    return {
        "health": health,
        "subscribe": _sync(subscribe),
        "unsubscribe": _sync(unsubscribe),
        "system-presence": _sync(presence),
        "node.list": _async(node_list),
        "node.describe": _async(node_describe),
        "node.invoke": _async(node_invoke),
        "node.invoke.result": _sync(node_invoke_result),
        "node.event": _async(node_event),
    }


def bus_handlers(gateway: Gateway) -> dict[str, Callable[[Any, CallContext], Awaitable[Any]]]:
    """Handlers of the cluster-wide owned methods, served on `<prefix>.rpc.<method>`."""
    nodes = gateway.nodes

    # The connection's own handlers above answer with the same data unmodelled (the hot
    # path); over the bus every reply is its catalogue model.
    async def presence(params: Any, ctx: CallContext) -> PresenceList:
        return PresenceList.model_validate(gateway.presence.entries())

    async def node_list(params: Any, ctx: CallContext) -> NodeListResult:
        return NodeListResult.model_validate({"nodes": await nodes.listing()})

    async def node_describe(params: NodeIdParams, ctx: CallContext) -> NodeInfo:
        return NodeInfo.model_validate(await nodes.describe(params.node_id))

    async def node_invoke(params: NodeInvokeParams, ctx: CallContext) -> NodeInvokeResult:
        # The RPC server has already applied the idempotency key (same key as `invoke`).
        return NodeInvokeResult.model_validate(await nodes.route(params))

    return {
        "system-presence": presence,
        "node.list": node_list,
        "node.describe": node_describe,
        "node.invoke": node_invoke,
    }
