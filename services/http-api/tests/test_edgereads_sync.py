"""http-api's read-your-writes bookkeeping (edgereads.py): which replicas a principal's
read must first catch up, and when a mark is spent. Replicas here are stand-ins that count
the catch-ups they are asked for (the replicas themselves: libs/aisopod/tests)."""

from __future__ import annotations

import asyncio
from typing import Any

from aisopod_http_api import edgereads
from aisopod_http_api.edgereads import HttpEdgeReads


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name
        self.warm = True
        self.revision = 0
        self.syncs = 0

    async def last_revision(self) -> int:
        self.syncs += 1
        return self.revision

    async def wait_for(self, revision: int, timeout: float) -> bool:
        return self.revision >= revision


def edge() -> tuple[HttpEdgeReads, dict[str, Replica]]:
    reads = HttpEdgeReads(host=None)  # type: ignore[arg-type]
    replicas = {name: Replica(name) for name in ("agents", "sessions", "presence")}
    reads.agents, reads.sessions_demand.part, reads.presence = (
        replicas["agents"],  # type: ignore[assignment]
        replicas["sessions"],  # type: ignore[assignment]
        replicas["presence"],  # type: ignore[assignment]
    )
    return reads, replicas


def syncs(replicas: dict[str, Replica]) -> dict[str, int]:
    return {name: r.syncs for name, r in replicas.items()}


async def test_a_writers_reads_catch_up_each_replica_once() -> None:
    reads, replicas = edge()
    every: list[Any] = list(replicas.values())
    assert await reads._synced("p", every)  # nothing written: no round trip
    assert syncs(replicas) == {"agents": 0, "sessions": 0, "presence": 0}
    reads.wrote("p")
    assert await reads._synced("q", every)  # another principal: not its write
    assert await reads._synced("p", [replicas["agents"]])  # /v1/models reads agents only
    assert syncs(replicas) == {"agents": 1, "sessions": 0, "presence": 0}
    assert await reads._synced("p", every)  # /status: the two it has not caught up yet
    assert syncs(replicas) == {"agents": 1, "sessions": 1, "presence": 1}
    assert await reads._synced("p", every)  # spent
    assert syncs(replicas) == {"agents": 1, "sessions": 1, "presence": 1}


async def test_a_replica_that_cannot_catch_up_sends_the_read_to_the_owner() -> None:
    reads, replicas = edge()
    reads.wrote("p")
    replicas["agents"].wait_for = _never  # type: ignore[method-assign]
    assert not await reads._synced("p", [replicas["agents"]])
    assert "p" in reads._unsynced  # still owed


async def _never(revision: int, timeout: float) -> bool:
    return False


async def test_a_forgotten_writer_makes_everyone_sync_once(monkeypatch) -> None:
    monkeypatch.setattr(edgereads, "WRITERS_TRACKED", 2)
    reads, replicas = edge()
    for writer in ("a", "b", "c"):  # "a" is forgotten: its write must not be missed
        reads.wrote(writer)
    assert "a" not in reads._unsynced
    assert await reads._synced("a", [replicas["agents"]])
    assert syncs(replicas)["agents"] == 1
    assert await reads._synced("z", [replicas["agents"]])  # covered by that catch-up
    assert syncs(replicas)["agents"] == 1
    assert await reads._synced("z", [replicas["sessions"]])  # not yet for sessions
    assert syncs(replicas)["sessions"] == 1


async def test_after_the_owner_answered_for_a_cold_replica_the_next_read_catches_up() -> None:
    """/status while the sessions replica warms up goes to the owner, whose count may be
    newer than the snapshot the replica is still applying: that principal's next edge read
    of it first catches up, so its counts never go back (monotonic reads)."""
    reads, replicas = edge()
    reads.instances = []
    replicas["sessions"].warm = False
    assert await reads._status_of("p", _no_usage) is None  # the owner answers
    replicas["sessions"].warm = True
    assert await reads._synced("q", list(replicas.values()))  # another principal: no wait
    assert syncs(replicas) == {"agents": 0, "sessions": 0, "presence": 0}
    assert await reads._synced("p", list(replicas.values()))
    assert syncs(replicas) == {"agents": 0, "sessions": 1, "presence": 0}
    assert "p" not in reads._unsynced  # spent


async def _no_usage() -> Any:
    raise AssertionError("not read: the owner answers")


class StubKvReplica:
    """Stands in for `aisopod.replica.KvReplica`: counts its starts and stops."""

    made: list[StubKvReplica] = []

    def __init__(self, name: str, kv: Any, prefix: str, **options: Any) -> None:
        self.name = name
        self.options = options
        self.started = self.stopped = False
        StubKvReplica.made.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


async def _until(condition: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.01)


async def test_the_sessions_replica_runs_only_while_status_reads_it(monkeypatch) -> None:
    """No replica until a /status read needs one; the next reads use the same one; `stop`
    stops it."""
    StubKvReplica.made = []
    monkeypatch.setattr(edgereads, "KvReplica", StubKvReplica)
    reads = HttpEdgeReads(host=None)  # type: ignore[arg-type]
    reads._sessions_kv = object()  # type: ignore[assignment]  # what start() would open
    assert reads.sessions is None and "sessions" not in {r.name for r in reads._replicas()}
    assert reads._sessions_replica() is None  # starting: the owner answers this read
    first = await reads.sessions_demand.ready()
    assert first is reads.sessions and first is StubKvReplica.made[0]
    assert first.options == {"keep_values": False}  # keys only: counted, never read
    assert first.started and reads._sessions_replica() is first
    assert len(StubKvReplica.made) == 1
    await reads.stop()
    assert first.stopped and reads.sessions is None and not reads.sessions_demand.running


async def test_an_idle_sessions_replica_is_stopped_and_the_next_read_starts_another(
    monkeypatch,
) -> None:
    StubKvReplica.made = []
    monkeypatch.setattr(edgereads, "KvReplica", StubKvReplica)
    reads = HttpEdgeReads(host=None)  # type: ignore[arg-type]
    reads._sessions_kv = object()  # type: ignore[assignment]
    reads.sessions_demand.idle_s = 0.05  # no read comes after the first
    first = await reads.sessions_demand.ready()
    await _until(lambda: first.stopped and reads.sessions is None, "the idle one stayed")
    assert first.started and not reads.sessions_demand.running
    reads.sessions_demand.idle_s = 300.0
    second = await reads.sessions_demand.ready()
    assert second is not first and second is reads.sessions and second.started
    await reads.stop()
    assert second.stopped and reads.sessions is None
