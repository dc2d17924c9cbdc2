"""A silent member moves its keys only once NATS says it is gone; a replica whose own
view went stale re-syncs before deciding (membership.py)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aisopod_ratelimit.membership import PREFIX, Membership
from aisopod_ratelimit.ownership import member_id

SELF = member_id("ratelimit-1")
PEER = member_id("ratelimit-2")


class FakeKV:
    """Puts numbered like a stream; each put is echoed to the live watch when `echo` is
    set; a new watch replays the last entry of every key, then the end-of-replay marker."""

    def __init__(self) -> None:
        self.revision = 0
        self.membership: Membership | None = None
        self.echo = True
        self.entries: dict[str, SimpleNamespace] = {}
        self.watches = 0

    async def put(self, key: str, value: bytes) -> int:
        self.revision += 1
        entry = SimpleNamespace(key=key, value=value, operation=None, revision=self.revision)
        self.entries[key] = entry
        if self.echo and self.membership is not None:
            asyncio.get_running_loop().call_soon(self.membership._on_entry, entry)
        return self.revision

    async def watch(self, keys: str) -> Any:
        self.watches += 1
        replay = [*self.entries.values(), None]

        class Watcher:
            def __aiter__(self) -> Any:
                return self

            async def __anext__(self) -> Any:
                if replay:
                    return replay.pop(0)
                await asyncio.Event().wait()  # a live watch with nothing new

            async def stop(self) -> None:
                pass

        return Watcher()


def membership(answer: bool | None, *, link: list[int] | None = None) -> Membership:
    kv: Any = FakeKV()
    counts = link if link is not None else [0]

    async def probe(member: str) -> bool | None:
        return answer

    m = Membership(
        kv,
        SELF,
        "ratelimit-1",
        mode="hash",
        probe=probe,
        link=lambda: counts[0],
    )
    kv.membership = m
    m.synced = True
    m._names[PEER] = "ratelimit-2"
    m._seen[PEER] = time.monotonic()
    m._rebuild()
    return m


async def silent_for_longer_than_the_ttl(m: Membership) -> None:
    m._seen[PEER] = time.monotonic() - m.ttl_s - 1
    m._expire()
    await asyncio.gather(*m._probing.values())


async def test_a_silent_member_that_does_not_answer_keeps_its_keys() -> None:
    m = membership(None)
    await silent_for_longer_than_the_ttl(m)
    assert set(m.ring.members) == {SELF, PEER}


async def test_a_silent_member_that_answers_is_kept_and_counted_as_heard() -> None:
    m = membership(True)
    await silent_for_longer_than_the_ttl(m)
    assert PEER in m.ring.members
    assert time.monotonic() - m._seen[PEER] < m.ttl_s


async def test_a_silent_member_nobody_listens_for_is_dropped() -> None:
    m = membership(False)
    await silent_for_longer_than_the_ttl(m)
    assert m.ring.members == (SELF,)


async def test_a_stale_own_view_is_not_current_until_resynced() -> None:
    m = membership(None)
    assert m.current()
    m._awake = time.monotonic() - m.ttl_s - 0.1  # as after a stall past the TTL
    assert not m.current()
    assert await m.resync(timeout=5)
    assert m.current()


async def test_a_reconnect_makes_the_view_stale_and_resync_waits_for_its_own_echo() -> None:
    link = [0]
    m = membership(None, link=link)
    assert m.current()
    link[0] = -1  # disconnected
    assert not m.current()
    link[0] = 1  # reconnected
    assert not m.current()
    kv: Any = m.kv
    kv.echo = False  # the watch has not caught up: no re-sync
    assert not await m.resync(timeout=0.2)
    assert not m.current()
    # The watch catches up: it delivers the heartbeat the re-sync put.
    m._on_entry(SimpleNamespace(key=PREFIX + SELF, value=b"{}", operation=None, revision=1))
    assert await m.resync(timeout=5)
    assert m.current()


async def test_a_watch_that_stays_silent_is_started_anew_for_the_resync() -> None:
    link = [0]
    m = membership(None, link=link)
    kv: Any = m.kv
    kv.echo = False  # the old watch died with NATS and its client has not noticed yet
    link[0] = 1
    try:
        assert await m.resync(timeout=5)  # a new watch replays our heartbeat
        assert kv.watches == 1 and m.current()
    finally:
        await m.stop()


async def test_a_member_that_deletes_its_key_is_dropped_at_once() -> None:
    m = membership(None)
    m._on_entry(SimpleNamespace(key=PREFIX + PEER, value=b"", operation="DEL", revision=9))
    assert m.ring.members == (SELF,)
