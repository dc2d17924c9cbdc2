"""Node connections: what they declare, `node.list`/`node.describe`, and `node.invoke`.

A `node` connection subscribes `<prefix>.node.<nodeId>.invoke` (queue group ws-gateway:
one delivery even if the node is connected twice) on the replica that holds it, so an
invoke from any replica, or from the runtime's agent tools, reaches it over NATS. That
replica sends `node.invoke.request` to the node and answers with its `node.invoke.result`,
or TIMEOUT; no subscriber anywhere is UNAVAILABLE `NOT_CONNECTED`. Idempotency keys are
honoured through the shared dedupe helper (KV `dedupe`), with the key the RPC server uses.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from aisopod.bus import decode_reply, encode_reply
from aisopod.catalogue.nodes import NodeInvokeParams, NodeInvokeResultParams
from aisopod.errors import AisopodError, InternalError, NotFound, Timeout, Unavailable
from aisopod.principal import SYSTEM, Principal
from aisopod.subjects import subject_token

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.nodes")

INVOKE_MARGIN_S = 2.0


@dataclass(slots=True)
class _Pending:
    conn: Connection
    future: asyncio.Future[dict[str, Any]]


class Nodes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._declared: dict[str, dict[str, list[str]]] = {}  # connId → caps, commands
        self._local: dict[str, Connection] = {}  # nodeId → newest connection
        self._subs: dict[str, Any] = {}
        self._tokens: dict[str, str] = {}  # subject token → nodeId
        self.tasks: set[asyncio.Task[None]] = set()  # node-side invokes, awaited by drain
        self._pending: dict[str, _Pending] = {}

    # -- node connections ---------------------------------------------------------------
    def declare(self, conn: Connection, *, caps: list[str], commands: list[str]) -> None:
        self._declared[conn.conn_id] = {"caps": list(caps), "commands": list(commands)}

    def declared(self, conn: Connection) -> dict[str, list[str]]:
        return self._declared.get(conn.conn_id, {"caps": [], "commands": []})

    async def attach(self, conn: Connection) -> None:
        node_id = conn.node_id
        assert node_id is not None
        self._local[node_id] = conn
        self._tokens[subject_token(node_id)] = node_id
        if node_id not in self._subs:
            bus = self.gateway.host.bus
            self._subs[node_id] = await bus.nc.subscribe(
                bus.subjects.node_invoke(node_id), queue="ws-gateway", cb=self._on_invoke
            )
            await bus.nc.flush(timeout=2)

    def detach(self, conn: Connection) -> None:
        self._declared.pop(conn.conn_id, None)
        for invoke_id, pending in list(self._pending.items()):
            if pending.conn is conn and not pending.future.done():
                pending.future.set_exception(
                    Unavailable("the node disconnected", code="NOT_CONNECTED")
                )
                self._pending.pop(invoke_id, None)
        node_id = conn.node_id
        if node_id is None or self._local.get(node_id) is not conn:
            return
        del self._local[node_id]
        self._tokens.pop(subject_token(node_id), None)
        sub = self._subs.pop(node_id, None)
        if sub is not None:
            self._spawn(_unsubscribe(sub))

    async def stop(self) -> None:
        for sub in list(self._subs.values()):
            await _unsubscribe(sub)
        self._subs.clear()

    # -- invoke, caller side ------------------------------------------------------------
    async def invoke(self, params: NodeInvokeParams, principal: Principal) -> Any:
        key = params.idempotency_key
        if key:
            deduper = self.gateway.host.rpc.deduper
            assert deduper is not None
            # Same key format as the RPC server: a WS retry and a bus retry share it.
            return await deduper.run(
                f"node.invoke|{principal.id}|{key}", lambda: self.route(params)
            )
        return await self.route(params)

    async def route(self, params: NodeInvokeParams) -> Any:
        bus = self.gateway.host.bus
        timeout_ms = params.timeout_ms or self.gateway.config.node_invoke_timeout_ms
        body = {
            "command": params.command,
            "params": params.params,
            "timeoutMs": timeout_ms,
        }
        try:
            msg = await bus.nc.request(
                bus.subjects.node_invoke(params.node_id),
                orjson.dumps(body),
                timeout=timeout_ms / 1000 + INVOKE_MARGIN_S,
            )
        except NoRespondersError:
            raise Unavailable(
                f"node {params.node_id} is not connected", code="NOT_CONNECTED"
            ) from None
        except NatsTimeout:
            raise Timeout(f"node {params.node_id} did not answer in time") from None
        return decode_reply(msg.data)

    # -- invoke, node side --------------------------------------------------------------
    async def _on_invoke(self, msg: Msg) -> None:
        # A subscription callback runs one at a time: the wait goes to its own task.
        self._spawn(self._serve_invoke(msg))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _serve_invoke(self, msg: Msg) -> None:
        try:
            result = await self._run_on_node(msg)
            reply = encode_reply(result)
        except AisopodError as exc:
            reply = encode_reply(error=exc)
        except Exception:
            log.exception("node invoke failed")
            reply = encode_reply(error=InternalError())
        if msg.reply:
            try:
                await self.gateway.host.bus.nc.publish(msg.reply, reply)
            except Exception:
                log.warning("could not answer a node invoke", exc_info=True)

    async def _run_on_node(self, msg: Msg) -> dict[str, Any]:
        conn = self._local.get(self._tokens.get(msg.subject.split(".")[-2], ""))
        if conn is None:
            raise Unavailable("the node is not connected here", code="NOT_CONNECTED")
        body = orjson.loads(msg.data)
        timeout_ms = int(body.get("timeoutMs") or self.gateway.config.node_invoke_timeout_ms)
        invoke_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[invoke_id] = _Pending(conn, future)
        try:
            conn.notify(
                "node.invoke.request",
                {
                    "id": invoke_id,
                    "nodeId": conn.node_id,
                    "command": body.get("command"),
                    "params": body.get("params"),
                    "timeoutMs": timeout_ms,
                },
            )
            try:
                return await asyncio.wait_for(future, timeout_ms / 1000)
            except TimeoutError:
                raise Timeout(
                    f"node {conn.node_id} did not answer within {timeout_ms} ms"
                ) from None
        finally:
            self._pending.pop(invoke_id, None)

    def result(self, conn: Connection, params: NodeInvokeResultParams) -> None:
        """A node's `node.invoke.result`: resolve the matching pending invoke."""
        pending = self._pending.get(params.id)
        if pending is None or pending.conn is not conn:
            raise NotFound(f"no pending invoke {params.id}", code="INVOKE_NOT_FOUND")
        if not pending.future.done():
            out: dict[str, Any] = {"ok": params.ok, "payload": params.payload}
            if params.error is not None:
                out["error"] = params.error.wire()
            pending.future.set_result(out)

    # -- listing ------------------------------------------------------------------------
    async def listing(self) -> list[dict[str, Any]]:
        """Paired nodes (auth `node.pair.list`) merged with the live ones (presence)."""
        nodes: dict[str, dict[str, Any]] = {}
        for entry in self.gateway.presence.entries():
            node_id = entry.get("nodeId")
            if not node_id or entry.get("role") != "node":
                continue
            client = entry.get("client") or {}
            nodes[node_id] = {
                "nodeId": node_id,
                "displayName": client.get("displayName"),
                "platform": client.get("platform"),
                "caps": entry.get("caps", []),
                "commands": entry.get("commands", []),
                "connected": True,
                "paired": False,
            }
        for paired in await self._paired():
            node_id = paired.get("nodeId")
            if not isinstance(node_id, str):
                continue
            node = nodes.setdefault(
                node_id,
                {
                    "nodeId": node_id,
                    "displayName": None,
                    "platform": None,
                    "caps": [],
                    "commands": [],
                    "connected": False,
                },
            )
            node["paired"] = True
            node["displayName"] = paired.get("displayName") or node["displayName"]
            node["platform"] = node["platform"] or paired.get("platform")
        return sorted(nodes.values(), key=lambda n: n["nodeId"])

    async def describe(self, node_id: str) -> dict[str, Any]:
        for node in await self.listing():
            if node["nodeId"] == node_id:
                return node
        raise NotFound(f"unknown node: {node_id}", code="NODE_NOT_FOUND")

    async def _paired(self) -> list[dict[str, Any]]:
        try:
            result = await self.gateway.host.bus.call("node.pair.list", {}, principal=SYSTEM)
        except Unavailable:
            return []  # auth down: live nodes are still worth listing
        paired = result.get("paired") if isinstance(result, dict) else None
        return [p for p in paired or [] if isinstance(p, dict)]


async def _unsubscribe(sub: Any) -> None:
    try:
        await sub.unsubscribe()
    except Exception:
        log.debug("unsubscribe failed", exc_info=True)
