"""Shared parts of the reliability suites (no tests here): clients that behave like real
ones while the stack is being broken under them, and the bookkeeping that proves nothing
was lost.

- `ResilientWs`: a WebSocket client that reconnects (through Traefik, which routes around a
  draining replica) and retries what may be retried: transport failures and the retryable
  errors of docs/protocol/websocket.md (UNAVAILABLE, TIMEOUT, CONFLICT while the first copy is
  in flight, RATE_LIMITED). Side-effecting calls carry an `idempotencyKey`, so a retry never
  runs twice.
- `Load`: steady chat (sessions written turn by turn), RPC reads and HTTP reads, each with
  a tally of calls, retries and failures (a failure = still failing after the retry budget).
- `EventFollower`: follows `chat.event` of the load's sessions and reconnects with
  `resume.lastSeq`, as docs/protocol/websocket.md tells clients to.
- `stream_events`: what the EVENTS stream holds, to compare the follower's view with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from websockets.exceptions import InvalidHandshake, WebSocketException

from aisopod import codec
from tests.support.ws_client import RpcError, WsClient

RETRYABLE = {-32013, -32008, -32009, -32029}  # UNAVAILABLE, TIMEOUT, CONFLICT, RATE_LIMITED
TRANSPORT = (ConnectionError, TimeoutError, OSError, WebSocketException, InvalidHandshake)
RETRY_BUDGET_S = 60.0
PAUSE_S = 0.1  # between retries: a client backing off, not a wait for a condition


@dataclass
class Tally:
    calls: int = 0
    retries: int = 0
    failures: list[str] = field(default_factory=list)


class ResilientWs:
    """One logical client over as many sockets as it takes."""

    def __init__(
        self,
        urls: list[str],
        token: str,
        *,
        scopes: tuple[str, ...] = ("operator.admin",),
        subscribe: list[str] | None = None,
    ) -> None:
        self.urls = itertools.cycle(urls)
        self.token = token
        self.scopes = scopes
        self.subscribe = subscribe if subscribe is not None else []
        self.ws: WsClient | None = None
        self.connects = 0

    async def _socket(self, deadline: float) -> WsClient:
        while self.ws is None or self.ws.closed.done():
            if self.ws is not None:
                await self.ws.close()
                self.ws = None
            try:
                self.ws = await WsClient.connect(
                    next(self.urls),
                    token=self.token,
                    scopes=self.scopes,
                    subscribe=self.subscribe,
                    timeout=5,
                )
                self.connects += 1
            except (*TRANSPORT, RpcError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(PAUSE_S)
        return self.ws

    async def call(self, method: str, params: dict[str, Any], tally: Tally) -> Any:
        """The result, after as many retries as the budget allows; raises the last error."""
        deadline = time.monotonic() + RETRY_BUDGET_S
        tally.calls += 1
        while True:
            try:
                ws = await self._socket(deadline)
                return await ws.call(method, params, timeout=15)
            except RpcError as exc:
                if exc.code not in RETRYABLE or time.monotonic() > deadline:
                    raise
            except TRANSPORT:
                if time.monotonic() > deadline:
                    raise
                if self.ws is not None:
                    await self.ws.close()
                    self.ws = None
            tally.retries += 1
            await asyncio.sleep(PAUSE_S)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


class Load:
    """Steady chat + RPC + HTTP traffic until `stop()`; every figure is kept."""

    def __init__(self, ws_urls: list[str], http_url: str, token: str, sessions: int = 2) -> None:
        self.ws_urls = ws_urls
        self.http_url = http_url
        self.token = token
        self.marker = uuid.uuid4().hex[:8]
        self.sessions = [f"agent:main:rel-{self.marker}-{n}" for n in range(sessions)]
        # Per session, each turn sent: (message, runId, how the run ended).
        self.turns: dict[str, list[tuple[str, str, str]]] = {key: [] for key in self.sessions}
        # Runs that ended otherwise than `ok` (the request itself was answered).
        self.run_errors: list[str] = []
        self.chat = Tally()
        self.rpc = Tally()
        self.http = Tally()
        self.http_paths = ["/health"]
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            models = await client.get(
                f"{self.http_url}/v1/models", headers={"Authorization": f"Bearer {self.token}"}
            )
        if models.status_code == 200:  # the OpenAI surface is there: read it too
            self.http_paths.append("/v1/models")
        self._tasks = [
            *(asyncio.create_task(self._chat(key)) for key in self.sessions),
            asyncio.create_task(self._reads()),
            asyncio.create_task(self._http()),
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @property
    def runs(self) -> dict[str, str]:
        """runId → how it ended, for every turn of every session."""
        return {run: status for turns in self.turns.values() for _, run, status in turns}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: {"calls": t.calls, "retries": t.retries, "failures": t.failures[:5]}
            for name, t in (("chat", self.chat), ("rpc", self.rpc), ("http", self.http))
        }
        out["run_errors"] = self.run_errors[:5]
        return out

    @property
    def failures(self) -> list[str]:
        return self.chat.failures + self.rpc.failures + self.http.failures

    async def _paced(self, every: float, step: Callable[[int], Awaitable[None]]) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            await step(n)
            await asyncio.sleep(every)

    async def _chat(self, key: str) -> None:
        """One session, turn after turn: send with an idempotency key, wait for the end."""
        client = ResilientWs(self.ws_urls, self.token, scopes=("operator.write",))

        async def turn(n: int) -> None:
            text = f"{key} turn {n}"
            params = {"sessionKey": key, "message": text, "idempotencyKey": f"{key}-{n}"}
            try:
                started = await client.call("chat.send", params, self.chat)
                done = await client.call(
                    "agent.wait", {"runId": started["runId"], "timeoutMs": 10_000}, self.chat
                )
                while done["status"] == "timeout":  # the run outlived one wait: wait again
                    done = await client.call(
                        "agent.wait", {"runId": started["runId"], "timeoutMs": 10_000}, self.chat
                    )
                self.turns[key].append((text, started["runId"], done["status"]))
                if done["status"] != "ok":
                    self.run_errors.append(f"{text}: run ended {done}")
            except Exception as exc:
                self.chat.failures.append(f"{text}: {exc!r}")

        try:
            await self._paced(0.3, turn)
        finally:
            await client.close()

    async def _reads(self) -> None:
        client = ResilientWs(self.ws_urls, self.token, scopes=("operator.read",))
        methods = [("config.get", {}), ("sessions.list", {"limit": 5}), ("health", {})]

        async def read(n: int) -> None:
            method, params = methods[n % len(methods)]
            try:
                await client.call(method, params, self.rpc)
            except Exception as exc:
                self.rpc.failures.append(f"{method}: {exc!r}")

        try:
            await self._paced(0.2, read)
        finally:
            await client.close()

    async def _http(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=10, trust_env=False, headers=headers) as client:

            async def get(n: int) -> None:
                path = self.http_paths[n % len(self.http_paths)]
                deadline = time.monotonic() + RETRY_BUDGET_S
                self.http.calls += 1
                while True:
                    try:
                        response = await client.get(f"{self.http_url}{path}")
                        if response.status_code == 200:
                            return
                        problem = f"{path}: HTTP {response.status_code}"
                    except httpx.HTTPError as exc:
                        problem = f"{path}: {exc!r}"
                    if time.monotonic() > deadline:
                        self.http.failures.append(problem)
                        return
                    self.http.retries += 1
                    await asyncio.sleep(PAUSE_S)

            await self._paced(0.2, get)


class EventFollower:
    """Follows `chat.event` for some sessions; on every close, reconnects with resume."""

    def __init__(self, urls: list[str], token: str, sessions: list[str]) -> None:
        self.urls = itertools.cycle(urls)
        self.token = token
        self.sessions = sessions
        self.seqs: list[int] = []
        self.resumes: list[dict[str, Any] | None] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        last: int | None = None
        while not self._stop.is_set():
            ws = await self._connect(last)
            self.resumes.append(ws.hello.get("resume"))
            self.connected.set()
            try:
                while not self._stop.is_set():
                    try:
                        event = await ws.next_event("chat.event", timeout=0.3)
                    except TimeoutError:
                        if ws.closed.done():
                            break
                        continue
                    if event["params"]["payload"].get("sessionKey") in self.sessions:
                        self.seqs.append(event["params"]["seq"])
                # Events read after the close still count (they were delivered).
                for event in ws.drain_events():
                    if event["method"] == "chat.event" and (
                        event["params"]["payload"].get("sessionKey") in self.sessions
                    ):
                        self.seqs.append(event["params"]["seq"])
                last = ws.last_seq or last
            finally:
                await ws.close()

    async def _connect(self, last: int | None) -> WsClient:
        deadline = time.monotonic() + RETRY_BUDGET_S
        while True:
            try:
                return await WsClient.connect(
                    next(self.urls),
                    token=self.token,
                    scopes=["operator.read"],
                    subscribe=["chat.event"],
                    resume=last,
                    timeout=5,
                )
            except (*TRANSPORT, RpcError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(PAUSE_S)


async def stream_events(js: Any, name: str, after_seq: int) -> list[tuple[int, dict[str, Any]]]:
    """(seq, payload) of every `name` event the EVENTS stream holds after `after_seq`."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after_seq + 1,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=10.0,
    )
    sub = await js.pull_subscribe(f"aisopod.evt.{name}", stream="EVENTS", config=config)
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while pending > 0:
            msgs = await sub.fetch(batch=min(pending, 500), timeout=5)
            pending -= len(msgs)
            out.extend((m.metadata.sequence.stream, codec.loads(m.data)) for m in msgs)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return out
