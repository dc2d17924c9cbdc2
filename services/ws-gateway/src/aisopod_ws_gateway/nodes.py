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
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import Field, ValidationError

from aisopod.bus import decode_reply, encode_reply
from aisopod.catalogue.nodes import NodeInvokeParams, NodeInvokeResultParams
from aisopod.compat.natspy import flush_in_order
from aisopod.errors import (
    AisopodError,
    Forbidden,
    InternalError,
    InvalidParams,
    NotFound,
    Timeout,
    Unavailable,
)
from aisopod.execpolicy import EXEC_COMMAND, needs_approval
from aisopod.jsread import snapshot
from aisopod.principal import SYSTEM, Principal
from aisopod.subjects import subject_token
from aisopod.wire import WireModel

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.service import Gateway

log = logging.getLogger("aisopod.ws.nodes")

INVOKE_MARGIN_S = 2.0


class KnownNode(WireModel):
    """A node's last declaration, kept in KV `nodeinfo` after it disconnects."""

    node_id: str
    display_name: str | None = None
    platform: str | None = None
    caps: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
    last_seen_at: int


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
        self._spawn(self._remember(conn, node_id))
        self._local[node_id] = conn
        self._tokens[subject_token(node_id)] = node_id
        if node_id not in self._subs:
            bus = self.gateway.host.bus
            self._subs[node_id] = await bus.nc.subscribe(
                bus.subjects.node_invoke(node_id), queue="ws-gateway", cb=self._on_invoke
            )
            await flush_in_order(bus.nc, 2)

    async def _remember(self, conn: Connection, node_id: str) -> None:
        """Keep the node's declaration past its connection: `node.describe` of a node that
        is away still says what it can do (with `connected: false`)."""
        declared = self.declared(conn)
        record = KnownNode(
            node_id=node_id,
            display_name=conn.client.get("displayName"),
            platform=conn.client.get("platform"),
            caps=declared["caps"],
            commands=declared["commands"],
            last_seen_at=int(time.time() * 1000),
        )
        try:
            kv = await self.gateway.host.kv("nodeinfo")
            await kv.put(_info_key(node_id), record.model_dump_json(by_alias=True).encode())
        except Exception as exc:  # the live node works without it; only the memory is lost
            log.warning("could not record node %s: %s", node_id, type(exc).__name__)

    async def _remembered(self) -> list[KnownNode]:
        try:
            kv = await self.gateway.host.kv("nodeinfo")
            entries = await snapshot(kv)
        except Exception as exc:
            log.warning("could not read the known nodes: %s", type(exc).__name__)
            return []
        out = []
        for entry in entries:
            try:
                out.append(KnownNode.model_validate_json(entry.value or b""))
            except ValidationError:
                log.warning("malformed nodeinfo entry %s", entry.key)
        return out

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
    async def check_exec_policy(self, params: NodeInvokeParams) -> None:
        """A client's direct `system.run` obeys the node's exec approval policy: one it
        would ask an operator about is refused (approvals go through the `exec` tool, whose
        own `node.invoke` arrives over the bus after the decision)."""
        if params.command != EXEC_COMMAND:
            return
        body = params.params if isinstance(params.params, dict) else {}
        given = body.get("command")
        argv = [str(a) for a in given] if isinstance(given, list) else None
        raw = body.get("rawCommand")
        command = raw if isinstance(raw, str) else " ".join(argv or [])
        # The node's own policy when it has one, else the gateway-wide one (`effective`).
        found = await self.gateway.host.bus.call(
            "exec.approvals.node.get", {"nodeId": params.node_id}, principal=SYSTEM
        )
        policy = found.get("effective") if isinstance(found, dict) else None
        if not isinstance(policy, dict) or needs_approval(policy, command, argv):
            raise Forbidden(
                f"{EXEC_COMMAND} of {command!r} needs an operator's approval under the exec "
                "policy; run it through the exec tool",
                code="EXEC_APPROVAL_REQUIRED",
            )

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
        command = body.get("command")
        # Checked where the node's declaration is known first-hand (no presence lag): an
        # undeclared command never reaches the node.
        if command not in self.declared(conn)["commands"]:
            raise InvalidParams(
                f"node {conn.node_id} did not declare the command {command!r}",
                code="COMMAND_NOT_DECLARED",
                nodeId=conn.node_id,
                command=command,
            )
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
                    "command": command,
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
        await self.gateway.presence.caught_up()  # a node whose hello is out is listed
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
        for known in await self._remembered():
            if known.node_id not in nodes:
                nodes[known.node_id] = {
                    "nodeId": known.node_id,
                    "displayName": known.display_name,
                    "platform": known.platform,
                    "caps": known.caps,
                    "commands": known.commands,
                    "connected": False,
                    "paired": False,
                }
        pairs, device_nodes = await asyncio.gather(self._paired(), self._paired_devices())
        for paired in [*pairs, *({"nodeId": d} for d in device_nodes)]:
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

    async def _paired_devices(self) -> list[str]:
        """Devices approved for role `node` (an OpenClaw node host pairs as a device, and
        its node id is its device id: docs/openclaw.md, Nodes)."""
        try:
            result = await self.gateway.host.bus.call("device.pair.list", {}, principal=SYSTEM)
        except Unavailable:
            return []
        paired = result.get("paired") if isinstance(result, dict) else None
        return [
            d["deviceId"]
            for d in paired or []
            if isinstance(d, dict)
            and isinstance(d.get("deviceId"), str)
            and "node" in d.get("roles", [])
        ]


def _info_key(node_id: str) -> str:
    # Node ids may hold characters a KV key may not (`:`); the record carries the id.
    return hashlib.sha256(node_id.encode()).hexdigest()


async def _unsubscribe(sub: Any) -> None:
    try:
        await sub.unsubscribe()
    except Exception:
        log.debug("unsubscribe failed", exc_info=True)
