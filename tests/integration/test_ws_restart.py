"""A ws-gateway replica restarted under load: clients reconnect with `resume` and lose no
event (private stack: the restart must not disturb the shared one)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import orjson
import pytest

from tests.conftest import start_local_stack, stop_local_stack
from tests.support.ws_client import WsClient
from tests.support.ws_stack import WsStack, require_ws_stack

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CLIENTS = 20


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.conftest import StackHandle

    state = tmp_path_factory.mktemp("ws-restart") / "state"
    state.mkdir()
    proc, info = start_local_stack(state, "--scale", "runtime=1")
    yield StackHandle(
        **{k: info[k] for k in ("http_url", "https_url", "ws_url", "admin_token", "nats_url")},
        state_dir=state,
        pids=info["pids"],
        launcher_pid=proc.pid,
    )
    stop_local_stack(proc)


class Follower:
    """A client that reconnects with resume whenever its socket closes."""

    def __init__(self, env: WsStack, marker: str) -> None:
        self.env = env
        self.marker = marker
        self.seqs: list[int] = []
        self.reconnects = 0
        self.ws: WsClient | None = None
        self.log: list[tuple] = []

    async def run(self, stop: asyncio.Event) -> None:
        last = None
        while not stop.is_set():
            self.ws = await self._connect(last)
            self.log.append(
                (
                    "hello",
                    last,
                    self.ws.hello["server"]["instance"],
                    self.ws.hello.get("resume"),
                    len(self.seqs),
                )
            )
            while True:
                try:
                    event = await self.ws.next_event("cron.event", timeout=0.5)
                except TimeoutError:
                    if self.ws.closed.done() or stop.is_set():
                        break
                    continue
                if event["params"]["payload"].get("jobId") == self.marker:
                    self.seqs.append(event["params"]["seq"])
            last = self.ws.last_seq
            self.log.append(
                ("closed", last, self.ws.closed.result() if self.ws.closed.done() else None)
            )
            await self.ws.close()
            self.reconnects += 1

    async def _connect(self, last: int | None) -> WsClient:
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            try:
                return await WsClient.connect(
                    self.env.url, token=self.env.token, subscribe=["cron.event"], resume=last
                )
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)  # the replica is restarting: retry, as clients do


async def test_restart_under_load_loses_nothing(private_stack) -> None:
    env = await require_ws_stack(private_stack)
    marker = uuid.uuid4().hex
    stop = asyncio.Event()
    followers = [Follower(env, marker) for _ in range(CLIENTS)]
    runs = [asyncio.create_task(f.run(stop)) for f in followers]
    nc = await env.nats()
    published: list[int] = []

    async def publish(count: int) -> None:
        for n in range(count):
            ack = await nc.jetstream().publish(
                "aisopod.evt.cron.event", orjson.dumps({"jobId": marker, "n": n})
            )
            published.append(ack.seq)
            await asyncio.sleep(0.005)

    try:
        # Everyone connected (a client connecting after the first publish would miss it).
        deadline = asyncio.get_running_loop().time() + 60
        while any(f.ws is None for f in followers):
            assert asyncio.get_running_loop().time() < deadline, "followers not connected"
            await asyncio.sleep(0.05)
        load = asyncio.create_task(publish(600))
        await asyncio.sleep(0.5)
        # The replica holding the first follower (pids are listed by replica number).
        instance = followers[0].ws.hello["server"]["instance"] if followers[0].ws else "-1"
        victim = private_stack.pids["ws-gateway"][int(instance.rsplit("-", 1)[1]) - 1]
        os.kill(victim, signal.SIGTERM)  # drain + 1012; the launcher restarts it
        await load
        deadline = asyncio.get_running_loop().time() + 30
        while any(len(f.seqs) < len(published) for f in followers):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
        for follower in followers:
            missing = sorted(set(published) - set(follower.seqs))
            assert follower.seqs == published, (missing, follower.log)
        assert sum(f.reconnects for f in followers) >= 1
    finally:
        stop.set()
        await asyncio.gather(*runs, return_exceptions=True)
        await nc.close()
