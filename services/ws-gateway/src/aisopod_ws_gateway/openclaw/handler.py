"""Requests of an OpenClaw connection after hello: each runs the row of `adapters.ADAPTERS`
for its method over our own dispatch (`Dispatcher.invoke`), so scopes, limits and errors
are those of our methods; a feature we do not have answers as `adapters.ABSENT` says. A
method in neither is `unknown method: <name>`. The `sessions.changed` feed is sent from
here: one frame per change of the `sessions` bucket, to the connections that joined it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from aisopod import codec, tracing
from aisopod.bus import decode_reply
from aisopod.errors import (
    AisopodError,
    InternalError,
    InvalidRequest,
    MethodNotFound,
    Timeout,
    Unavailable,
)
from aisopod.jsonrpc import Call, Decoded, Rejected
from aisopod.scopes import Requirement
from aisopod_ws_gateway import wsframes
from aisopod_ws_gateway.audience import Subscription
from aisopod_ws_gateway.codec import JSONRPC
from aisopod_ws_gateway.connection import State
from aisopod_ws_gateway.dispatch import Outcome, Reply
from aisopod_ws_gateway.openclaw.adapters import (
    ABSENT,
    ADAPTERS,
    NO_HEARTBEATS,
    Absent,
    Adapter,
    Context,
    Heartbeats,
    agent_final,
    session_key_param,
    session_row,
)

if TYPE_CHECKING:
    from aisopod_ws_gateway.connection import Connection
    from aisopod_ws_gateway.dispatch import Dispatcher
    from aisopod_ws_gateway.openclaw.edgehealth import EdgeHealth

log = logging.getLogger("aisopod.ws.openclaw")

AGENT_WAIT_MS = 600_000
"""`agent` without a timeout waits as long as our own long waits (dispatch.LONG_WAITS)."""
CHAT_EVENTS = ["chat.event", "agent.event"]

Resubscribe = Callable[["Connection", Subscription], Any]


class OpenClawMethods:
    def __init__(
        self,
        dispatcher: Dispatcher,
        version: str,
        *,
        conns: dict[str, Connection] | None = None,
        resubscribe: Resubscribe | None = None,
        default_agent: Callable[[], str] = lambda: "main",
        heartbeats: Heartbeats = lambda: NO_HEARTBEATS,
    ) -> None:
        """`conns`: this gateway's connections by id (the `sessions.changed` feed's
        audience); `resubscribe`: how a connection's event subscription is changed."""
        self.dispatcher = dispatcher
        self.version = version
        self.conns = conns if conns is not None else {}
        self.resubscribe = resubscribe
        self.default_agent = default_agent
        self.heartbeats = heartbeats
        self.edge_health: EdgeHealth | None = None  # set once the edge's parts started
        self.session_watchers: set[str] = set()  # conn ids in the sessions.changed feed
        # Holds the sessions index for a feed client until it is warm (set by the gateway;
        # False: it did not warm up in time).
        self.join_sessions_feed: Callable[[str], Awaitable[bool]] | None = None
        self._memo: dict[str, tuple[tuple[bytes, ...], bytes]] = {}  # method → (key, body)

    def frame(self, conn: Connection, decoded: Decoded) -> None:
        for item in decoded.items:
            if isinstance(item, Rejected):
                conn.reply_error(item.id, item.error)
            else:
                self.request(conn, item)

    def request(self, conn: Connection, call: Call) -> None:
        row = ADAPTERS.get(call.method)
        if row is None and call.method in ABSENT:
            self._absent(conn, call, ABSENT[call.method])
            return
        if row is None:
            error: AisopodError = (
                InvalidRequest("already connected", code="CONNECTED")
                if call.method == "connect"
                else MethodNotFound(f"unknown method: {call.method}")
            )
            conn.reply_error(call.id, error)
            return
        if row.at_edge and self._at_edge(conn, call, row):
            return
        params = call.params or {}
        if row.feed is not None:
            self._feed(conn, call, row, params)
            return
        if row.passthrough:
            try:
                ours = row.params(params) if row.params is not None else params
            except AisopodError as exc:  # a mapping may refuse what it cannot translate
                conn.reply_error(call.id, exc)
                return
            ours_call = Call(row.ours, ours, call.id, traceparent=call.traceparent)
            self.dispatcher.frame(conn, Decoded((ours_call,)))
            return
        if row.two_phase:
            conn.spawn(self._run(conn, call, row, params, None))
            return
        try:
            ours = row.params(params) if row.params is not None else params
        except AisopodError as exc:  # as on the forwarded path: a refusal, not a crash
            conn.reply_error(call.id, exc)
            return
        handle = self.dispatcher.handle
        outcomes = [
            # Each of our calls continues the frame's trace (aisopod.tracing).
            handle(conn, Call(method, method_params, 0, traceparent=call.traceparent), JSONRPC)
            for method, method_params in ((row.ours, ours), *((m, {}) for m in row.also))
        ]
        replies = [o for o in outcomes if isinstance(o, tuple)]
        if len(replies) == len(outcomes):  # all answered at the edge: no task, maybe no work
            self._answer_now(conn, call, row, params, replies)
        else:
            conn.spawn(self._run(conn, call, row, params, outcomes))

    def _answer_now(
        self,
        conn: Connection,
        call: Call,
        row: Adapter,
        params: dict[str, Any],
        replies: list[Reply],
    ) -> None:
        """Our answers are all in (edge reads): the OpenClaw payload, reused while they and
        the params are the same (unless the row's result reads the clock: `Adapter.clocked`)."""
        key = (orjson.dumps(params, option=orjson.OPT_SORT_KEYS), *(data for data, _ in replies))
        memo = None if row.clocked else self._memo.get(call.method)
        if memo is not None and memo[0] == key:
            body = memo[1]
        else:
            try:
                answers = [_answer(reply) for reply in replies]
            except row.empty_on:
                conn.send_payload(conn.codec.result(call.id, row.empty))
                conn.count_reply(None)
                return
            except AisopodError as exc:
                conn.reply_error(call.id, exc)
                return
            try:
                value = self._result(row, params, answers, 0)
            except AisopodError as exc:
                conn.reply_error(call.id, exc)
                return
            body = codec.dumps({"result": value})
            if not row.clocked:
                self._memo[call.method] = (key, body)
        frame = conn.codec.splice(call.id, body)
        assert frame is not None
        conn.send_payload(frame)
        conn.count_reply(None)

    def _result(self, row: Adapter, params: dict[str, Any], answers: list[Any], ms: int) -> Any:
        if row.result is None:
            return answers[0]
        ctx = Context(
            params=params,
            also=dict(zip(row.also, answers[1:], strict=True)),
            version=self.version,
            elapsed_ms=ms,
            default_agent=self.default_agent(),
            heartbeats=self.heartbeats(),
        )
        return row.result(answers[0], ctx)

    def _at_edge(self, conn: Connection, call: Call, row: Adapter) -> bool:
        """Answer from the edge's own state; False when it is cold (the row's path)."""
        health = self.edge_health
        if health is None or conn.edge_unsynced & health.buckets:
            # The owner answered this connection while the edge was cold: the row's path
            # reads through the edge, which catches up first (monotonic reads).
            return False
        body = health.body()
        if body is None:
            return False
        error = self.dispatcher.admit(conn, row.uses())
        if error is not None:
            conn.reply_error(call.id, error)
            return True
        frame = conn.codec.splice(call.id, body)
        assert frame is not None
        conn.send_payload(frame)
        conn.count_reply(None)
        return True

    def _absent(self, conn: Connection, call: Call, absent: Absent) -> None:
        """A feature we do not have: OpenClaw's own answer without it (rate-limited as any
        request; it reveals nothing, so no scope)."""
        error = self.dispatcher.admit(conn, ())
        if error is None and absent.unknown:
            error = MethodNotFound(f"unknown method: {call.method}")
        if error is None and absent.unavailable is not None:
            error = Unavailable(absent.unavailable, code="NOT_SUPPORTED")
        if error is not None:
            conn.reply_error(call.id, error)
            return
        conn.send_payload(conn.codec.result(call.id, absent.answer))
        conn.count_reply(None)

    def _feed(self, conn: Connection, call: Call, row: Adapter, params: dict[str, Any]) -> None:
        error = self.dispatcher.admit(conn, row.uses())
        try:
            if error is not None:
                raise error
            if row.feed == "sessions.changed" and self.join_sessions_feed is not None:
                conn.spawn(self._join_sessions(conn, call, self.join_sessions_feed))
                return
            value = self._join(conn, row.feed, params)
        except AisopodError as exc:
            conn.reply_error(call.id, exc)
            return
        conn.send_payload(conn.codec.result(call.id, value))
        conn.count_reply(None)

    async def _join_sessions(
        self, conn: Connection, call: Call, join: Callable[[str], Awaitable[bool]]
    ) -> None:
        """Into the feed once the sessions index runs warm: every change after the reply
        is announced."""
        if not await join(conn.conn_id):
            log.warning("sessions index not warm in time: sessions.changed may miss changes")
        if conn.state is State.CLOSED:
            return
        value = self._join(conn, "sessions.changed", {})
        conn.send_payload(conn.codec.result(call.id, value))
        conn.count_reply(None)

    def _join(self, conn: Connection, feed: str | None, params: dict[str, Any]) -> Any:
        if feed == "sessions.changed":
            self.session_watchers.add(conn.conn_id)
            return {"subscribed": True}
        key = session_key_param(params, self.default_agent())
        if feed == "-chat":
            return {"subscribed": False, "key": key}
        subscription = conn.subscription
        if not all(subscription.admits(name) for name in CHAT_EVENTS):
            assert self.resubscribe is not None
            if subscription.include is None:  # all but some: stop leaving these out
                wanted = Subscription(
                    None, subscription.exclude - frozenset(CHAT_EVENTS), subscription.session_keys
                )
            else:
                wanted = subscription.subscribe(CHAT_EVENTS, None)
            self.resubscribe(conn, wanted)
        keys = conn.subscription.session_keys
        if keys is not None and key not in keys:  # narrowed to some sessions: add this one
            assert self.resubscribe is not None
            self.resubscribe(conn, conn.subscription.subscribe([], [key]))
        return {"subscribed": True, "key": key}

    def session_changed(self, key: str, stored: dict[str, Any] | None) -> None:
        """One change of the `sessions` bucket, as OpenClaw's `sessions.changed`, to the
        connections in the feed that may still read sessions: one frame for all."""
        if not self.session_watchers:
            return
        payload: dict[str, Any] = {"sessionKey": key, "ts": int(time.time() * 1000)}
        if stored is None:
            payload["reason"] = "delete"
            agent_id = key.split(":")[1] if key.startswith("agent:") else None
        else:
            payload["session"] = session_row(stored)
            agent_id = stored.get("agentId")
        if agent_id:
            payload["agentId"] = agent_id
        frame = wsframes.text(
            codec.dumps({"type": "event", "event": "sessions.changed", "payload": payload})
        )
        for conn_id in list(self.session_watchers):
            conn = self.conns.get(conn_id)
            if conn is None or conn.state is State.CLOSED:
                self.session_watchers.discard(conn_id)
            elif conn.view is not None and conn.view.may(Requirement.READ):
                conn.write_event(0, frame, True)  # droppable, as OpenClaw drops it if slow

    async def _run(
        self,
        conn: Connection,
        call: Call,
        row: Adapter,
        params: dict[str, Any],
        outcomes: list[Outcome] | None,
    ) -> None:
        """The row with some answer still to come (forwarded to an owner): `outcomes` are
        our calls already started, None to start them here."""
        started = time.monotonic()
        tracing.adopt(call.traceparent)  # our calls below continue the frame's trace
        invoke = self.dispatcher.invoke
        try:
            ours = row.params(params) if row.params is not None else params
            try:
                if outcomes is None:
                    answers = await asyncio.gather(
                        invoke(conn, row.ours, ours), *(invoke(conn, m, {}) for m in row.also)
                    )
                else:
                    replies = await asyncio.gather(*map(_settled, outcomes))
                    answers = [_answer(reply) for reply in replies]
            except row.empty_on:
                conn.send_payload(conn.codec.result(call.id, row.empty))
                conn.count_reply(None)
                return
            ms = int((time.monotonic() - started) * 1000)
            value = self._result(row, params, list(answers), ms)
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


async def _settled(outcome: Outcome) -> Reply:
    reply = outcome if outcome is None or isinstance(outcome, tuple) else await outcome
    if reply is None:  # pragma: no cover - only notifications go unanswered
        raise InternalError("a call gave no answer")
    return reply


def _answer(reply: Reply) -> Any:
    """Our answer in a JSON-RPC reply, or its error raised (as `Dispatcher.invoke`)."""
    data, error = reply
    if error is not None:
        raise error
    return decode_reply(data)
