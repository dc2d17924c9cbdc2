"""Requests of an OpenClaw connection after hello: each runs the row of `adapters.ADAPTERS`
for its method over our own dispatch (`Dispatcher.invoke`), so scopes, limits and errors
are those of our methods. A method without a row is `unknown method: <name>`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aisopod import tracing
from aisopod.errors import AisopodError, InvalidRequest, MethodNotFound, Timeout
from aisopod.jsonrpc import Call, Decoded, Rejected
from aisopod_ws_gateway.openclaw.adapters import ADAPTERS, Adapter, Context, agent_final

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.dispatch import Dispatcher

AGENT_WAIT_MS = 600_000
"""`agent` without a timeout waits as long as our own long waits (dispatch.LONG_WAITS)."""


class OpenClawMethods:
    def __init__(self, dispatcher: Dispatcher, version: str) -> None:
        self.dispatcher = dispatcher
        self.version = version

    def frame(self, conn: Connection, decoded: Decoded) -> None:
        for item in decoded.items:
            if isinstance(item, Rejected):
                conn.reply_error(item.id, item.error)
            else:
                self.request(conn, item)

    def request(self, conn: Connection, call: Call) -> None:
        row = ADAPTERS.get(call.method)
        if row is None:
            error: AisopodError = (
                InvalidRequest("already connected", code="CONNECTED")
                if call.method == "connect"
                else MethodNotFound(f"unknown method: {call.method}")
            )
            conn.reply_error(call.id, error)
            return
        params = call.params or {}
        if row.passthrough:
            try:
                ours = row.params(params) if row.params is not None else params
            except AisopodError as exc:  # a mapping may refuse what it cannot translate
                conn.reply_error(call.id, exc)
                return
            ours_call = Call(row.ours, ours, call.id, traceparent=call.traceparent)
            self.dispatcher.frame(conn, Decoded((ours_call,)))
            return
        conn.spawn(self._run(conn, call, row, params))

    async def _run(
        self, conn: Connection, call: Call, row: Adapter, params: dict[str, Any]
    ) -> None:
        started = time.monotonic()
        tracing.adopt(call.traceparent)  # our calls below continue the frame's trace
        invoke = self.dispatcher.invoke
        try:
            ours = row.params(params) if row.params is not None else params
            try:
                answers = await asyncio.gather(
                    invoke(conn, row.ours, ours), *(invoke(conn, m, {}) for m in row.also)
                )
            except row.empty_on:
                conn.send_payload(conn.codec.result(call.id, row.empty))
                conn.count_reply(None)
                return
            ctx = Context(
                params=params,
                also=dict(zip(row.also, answers[1:], strict=True)),
                version=self.version,
                elapsed_ms=int((time.monotonic() - started) * 1000),
            )
            value = row.result(answers[0], ctx) if row.result is not None else answers[0]
            conn.send_payload(conn.codec.result(call.id, value))
            conn.count_reply(None)
            if row.two_phase:
                final = await self._final(conn, ours, answers[0])
                conn.send_payload(conn.codec.result(call.id, final))
        except AisopodError as exc:
            if row.two_phase and isinstance(exc, Timeout):
                exc.data["code"] = "AGENT_TIMEOUT"
            conn.reply_error(call.id, exc)

    async def _final(self, conn: Connection, ours: dict[str, Any], accepted: Any) -> Any:
        """`agent`'s second reply: wait for the run, then read what it answered."""
        run_id = accepted["runId"]
        waited = await self.dispatcher.invoke(
            conn, "agent.wait", {"runId": run_id, "timeoutMs": ours.get("timeoutMs", AGENT_WAIT_MS)}
        )
        agent_id = ours.get("agentId")
        session_key = ours.get("sessionKey") or (f"agent:{agent_id}:main" if agent_id else "main")
        history = await self.dispatcher.invoke(
            conn, "chat.history", {"sessionKey": session_key, "limit": 50}
        )
        return agent_final(waited, history)
