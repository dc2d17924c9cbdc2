"""Exactness across two ratelimit replicas, and a lockout surviving its owner's death.

A private stack (`--scale ratelimit=2`, one replica of each edge): the NATS queue group
spreads `ratelimit.*` callers (http-api's `ratelimit.edge` for every API request among
them) over both replicas; whichever replica gets a request, the key's owner decides it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from aisopod import codec
from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod_ratelimit.ownership import member_id
from tests.conftest import start_local_stack, stop_local_stack
from tests.support.metrics import samples

pytestmark = pytest.mark.integration

LIMIT = 50
CONCURRENCY = 200
STALL_LIMIT = 10


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("ratelimit-pair") / "state"
    state.mkdir()
    seed = state.parent / "seed.yaml"
    seed.write_text(
        json.dumps(
            {
                "auth": {"mode": "token"},
                "limits": {
                    "rules": [
                        {"name": "http", "limit": LIMIT, "windowS": 60},
                        {"name": "ws_connect", "limit": 60, "windowS": 60},
                        {"name": "nats_exact", "key": "principal", "limit": LIMIT, "windowS": 60},
                        # Refuses while its owner is out of reach, so that every admission
                        # the stall test sees was decided by the key's owner.
                        {
                            "name": "stall_exact",
                            "key": "principal",
                            "limit": STALL_LIMIT,
                            "windowS": 600,
                            "failOpen": False,
                        },
                        {
                            "name": "auth_failures",
                            "limit": 3,
                            "windowS": 60,
                            "lockoutS": 300,
                            "failOpen": False,
                            "exempt": False,
                        },
                    ]
                },
            }
        )
    )
    proc, info = start_local_stack(
        state,
        "--config",
        str(seed),
        "--replicas",
        "1",
        "--scale",
        "ratelimit=2",
        # The test plays many clients from loopback by X-Forwarded-For, as a proxy would.
        "--trusted-proxy",
        "127.0.0.1/32",
    )
    try:
        yield info
    finally:
        stop_local_stack(proc)


def replica_urls(info: dict[str, Any]) -> list[str]:
    """The ratelimit replicas' own URLs (their /metrics), in order, from the stack record."""
    record = json.loads((Path(info["state_dir"]) / "stack.json").read_text())
    return list(record["service_urls"]["ratelimit"])


def decisions(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aisopod_ratelimit_decisions_total{")
    )


async def admin_nats(info: dict[str, Any]) -> nats.NATS:
    password = (Path(info["state_dir"]) / "secrets" / "nats-admin.password").read_text().strip()
    return await nats.connect(info["nats_url"], user="admin", password=password)


async def set_ownership(info: dict[str, Any], mode: str) -> None:
    """Switch `limits.ownership` live and wait until both replicas run it."""
    nc = await admin_nats(info)
    try:
        store = ConfigStore(await nc.jetstream().key_value("config"))
        current = await store.load()
        document = current.config.document()
        document["limits"]["ownership"] = mode
        written = await store.write(GatewayConfig.model_validate(document), current.hash)
        deadline = time.monotonic() + 10
        while True:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("aisopod.control.config.report", b"", reply=inbox)
            hashes = set()
            try:
                while True:
                    body = codec.loads((await sub.next_msg(timeout=0.3)).data)
                    if body["service"] == "ratelimit":
                        hashes.add((body["instance"], body["hash"]))
            except nats.errors.TimeoutError:
                pass
            await sub.unsubscribe()
            if {h for _, h in hashes} == {written.hash} and len(hashes) == 2:
                return
            assert time.monotonic() < deadline, hashes
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


@pytest.mark.parametrize("mode", ["primary", "hash"])
async def test_two_replicas_admit_exactly_the_limit_of_200_concurrent_requests(
    pair, mode: str
) -> None:
    """Half through Traefik (http-api asks `ratelimit.edge`), half straight over NATS as
    another service would ask, all at once, for one client."""
    await set_ownership(pair, mode)
    urls = replica_urls(pair)
    before = [decisions(u) for u in urls]
    ip = f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}"
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    nc = await admin_nats(pair)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as c:
        gate = asyncio.Event()

        async def through_traefik() -> int:
            await gate.wait()
            response = await c.get(f"{pair['http_url']}/status", headers={"X-Forwarded-For": ip})
            return response.status_code

        async def over_nats() -> int:
            await gate.wait()
            body = codec.dumps({"path": "/status", "clientIp": ip})
            reply = await nc.request("aisopod.ratelimit.edge", body, timeout=30)
            return 200 if codec.loads(reply.data)["result"]["allowed"] else 429

        tasks = [
            asyncio.create_task(through_traefik() if i % 2 else over_nats())
            for i in range(CONCURRENCY)
        ]
        gate.set()
        try:
            statuses = await asyncio.gather(*tasks)
        finally:
            await nc.close()
    assert sum(1 for s in statuses if s != 429) == LIMIT
    assert statuses.count(429) == CONCURRENCY - LIMIT
    after = [decisions(u) for u in urls]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


@pytest.mark.parametrize("mode", ["primary", "hash"])
async def test_two_replicas_admit_exactly_the_limit_over_nats(pair, mode: str) -> None:
    await set_ownership(pair, mode)
    nc = await admin_nats(pair)
    try:
        body = codec.dumps({"rule": "nats_exact", "key": f"principal:p-{random.random()}"})
        replies = await asyncio.gather(
            *(nc.request("aisopod.ratelimit.check", body, timeout=10) for _ in range(CONCURRENCY))
        )
        results = [codec.loads(r.data)["result"] for r in replies]
        assert sum(r["allowed"] for r in results) == LIMIT
    finally:
        await nc.close()


def metric(url: str, name: str) -> float:
    """Sum of a metric's samples (every label set) on one replica."""
    return sum(samples(httpx.get(f"{url}/metrics", timeout=5).text, name))


def noticed_silence(url: str) -> bool:
    """The replica has acted on a peer's missing heartbeats: it probed the peer without an
    answer (or, as before the probe existed, dropped it from its members)."""
    probed = metric(url, 'aisopod_ratelimit_member_probes_total{outcome="unanswered"}')
    return probed >= 1 or metric(url, "aisopod_ratelimit_members") < 2


@pytest.mark.parametrize("stalled", ["owner", "other"])
async def test_a_stalled_replica_is_not_superseded_while_it_may_still_decide(
    pair, stalled: str
) -> None:
    """SIGSTOP one replica past the heartbeat TTL, ask the survivor meanwhile, SIGCONT: the
    key is never admitted beyond its limit. A stalled owner decides the requests queued for
    it when it resumes, so the survivor must not have decided them too; a stalled
    non-owner, resuming, must not take the silence it slept through for the owner's."""
    await set_ownership(pair, "primary")  # ratelimit-1 owns every key
    index = 0 if stalled == "owner" else 1
    stalled_pid = pair["pids"]["ratelimit"][index]
    urls = replica_urls(pair)
    survivor = urls[1 - index]
    resynced = 'aisopod_ratelimit_resyncs_total{outcome="ok"}'
    resyncs = metric(urls[index], resynced)
    body = codec.dumps({"rule": "stall_exact", "key": f"principal:stall-{random.random()}"})
    nc = await admin_nats(pair)

    async def check() -> bool:
        reply = await nc.request("aisopod.ratelimit.check", body, timeout=60)
        return bool(codec.loads(reply.data)["result"]["allowed"])

    try:
        before = [await check() for _ in range(STALL_LIMIT - 2)]
        assert all(before)
        os.kill(stalled_pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 20
            while not noticed_silence(survivor):
                assert time.monotonic() < deadline, "the survivor never noticed the silence"
                await asyncio.sleep(0.1)
            # The queue group hands some of these to the stopped owner (answered once it
            # resumes) and the others to the survivor.
            during = [asyncio.create_task(check()) for _ in range(2 * STALL_LIMIT)]
            deadline = time.monotonic() + 20
            while not any(t.done() for t in during):
                assert time.monotonic() < deadline, "the survivor answered nothing"
                await asyncio.sleep(0.05)
        finally:
            os.kill(stalled_pid, signal.SIGCONT)
        answered = await asyncio.gather(*during)
        after = [await check() for _ in range(2 * STALL_LIMIT)]
        admitted = sum(before) + sum(answered) + sum(after)
        assert admitted <= STALL_LIMIT, (sum(before), answered, after)
        assert not after[-1]  # the owner's window holds the key's admissions: full
        if stalled == "owner":  # it re-synced before deciding what was queued for it
            assert metric(urls[index], resynced) > resyncs
    finally:
        await nc.close()


async def test_a_briefly_stalled_owner_is_waited_for_not_failed_open(pair) -> None:
    """The owner stops for a second (longer than `peerTimeoutMs`, shorter than the TTL)
    while a burst arrives for a fail-open rule: the survivor waits for the owner, whose
    heartbeats still show it alive, instead of admitting uncounted requests."""
    await set_ownership(pair, "primary")
    owner_pid = pair["pids"]["ratelimit"][0]
    urls = replica_urls(pair)
    degraded = "aisopod_ratelimit_degraded_total"
    before = [metric(u, degraded) for u in urls]
    body = codec.dumps({"rule": "nats_exact", "key": f"principal:brief-{random.random()}"})
    nc = await admin_nats(pair)

    async def check() -> bool:
        reply = await nc.request("aisopod.ratelimit.check", body, timeout=30)
        return bool(codec.loads(reply.data)["result"]["allowed"])

    try:
        os.kill(owner_pid, signal.SIGSTOP)
        try:
            burst = [asyncio.create_task(check()) for _ in range(2 * LIMIT)]
            await asyncio.sleep(1.0)  # the stall itself (the scenario, not a wait)
        finally:
            os.kill(owner_pid, signal.SIGCONT)
        admitted = sum(await asyncio.gather(*burst))
        # Every request was decided by the owner: none admitted by the fail mode (the
        # owner would also have counted those it was asked about, so the total alone
        # could still read LIMIT).
        assert [metric(u, degraded) for u in urls] == before
        assert admitted == LIMIT
    finally:
        await nc.close()


async def test_a_lockout_outlives_the_replica_that_owned_it(pair) -> None:
    await set_ownership(pair, "primary")  # ratelimit-1 owns every key
    key = f"ip:198.19.{random.randint(0, 255)}.{random.randint(1, 254)}"
    nc = await admin_nats(pair)
    try:

        async def call(verb: str, timeout: float = 5) -> dict[str, Any]:
            body = codec.dumps({"rule": "auth_failures", "key": key})
            msg = await nc.request(f"aisopod.ratelimit.{verb}", body, timeout=timeout)
            return codec.loads(msg.data)["result"]

        for _ in range(3):
            await call("fail")
        assert (await call("status"))["locked"]
        load = asyncio.create_task(_api_load(pair["http_url"], seconds=3.0))
        await asyncio.sleep(0.5)  # the load is running when the primary dies
        killed_at = time.monotonic()
        os.kill(pair["pids"]["ratelimit"][0], signal.SIGKILL)
        owner_subject = f"aisopod.ratelimit.peer.{member_id('ratelimit-1')}"
        dropped_at = await interest_dropped(nc, owner_subject)
        # Until NATS notices the death, a request may reach the dying replica (no answer)
        # or time out at the survivor's forward (the rule fails closed: refused, not
        # "locked"). Every answer refuses; once settled they come from the survivor (or
        # the owner's restarted process) and carry the stored lockout.
        answers: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while not (len(answers) >= 5 and all(a["locked"] for a in answers[-5:])):
            assert time.monotonic() < deadline, answers
            try:
                answers.append(await call("status", timeout=1))
            except nats.errors.TimeoutError:
                continue
        assert not any(a["allowed"] for a in answers), answers
        assert answers[-1]["retryAfterMs"] > 280_000
        # Only requests whose limit check was in flight on the dying replica failed;
        # every one sent once NATS had dropped the dead client's interest went to the
        # survivor. (That moment is observed, not assumed: on a loaded machine the
        # kernel's close and nats-server's noticing it can take well over 50 ms.)
        sent = await load
        late_errors = [(t - killed_at, s) for t, s in sent if s >= 500 and t > dropped_at]
        assert len(sent) > 20 and not late_errors, (dropped_at - killed_at, late_errors)
    finally:
        await nc.close()


async def interest_dropped(nc: nats.NATS, subject: str) -> float:
    """When NATS stopped routing to a killed replica's own subject: the first ping that
    meets "no responders" (a ping the dead process holds times out instead)."""
    ping = codec.dumps(["ping", "", "", 0])
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, f"NATS still routes {subject} to a dead process"
        try:
            await nc.request(subject, ping, timeout=0.2)
        except nats.errors.NoRespondersError:
            return time.monotonic()
        except nats.errors.TimeoutError:
            continue
        # An answer: a restarted replica already listens, so the old one's interest is gone.
        return time.monotonic()


async def _api_load(http_url: str, seconds: float) -> list[tuple[float, int]]:
    """API requests through Traefik from many clients (each well under its limit) for
    `seconds`: when each was sent, and its status."""
    sent: list[tuple[float, int]] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=http_url, timeout=10, trust_env=False) as c:

        async def worker(n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                ip = f"198.18.{n}.{i % 250 + 1}"
                started = time.monotonic()
                response = await c.get("/status", headers={"X-Forwarded-For": ip})
                sent.append((started, response.status_code))
                i += 1

        await asyncio.gather(*(worker(n) for n in range(4)))
    return sent
