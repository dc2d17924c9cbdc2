"""`OnDemand`: a part started by its first use, kept while used or held, stopped when idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from aisopod.ondemand import OnDemand

DEADLINE_S = 20.0


class Part:
    def __init__(self, number: int) -> None:
        self.number = number
        self.stopped = False


class Parts:
    """Starts numbered parts (optionally failing the next start) and records their stops."""

    def __init__(self) -> None:
        self.started: list[Part] = []
        self.fail_next = False

    async def start(self) -> Part:
        await asyncio.sleep(0)  # a real start awaits the server
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("server gone")
        part = Part(len(self.started) + 1)
        self.started.append(part)
        return part

    async def stop(self, part: Part) -> None:
        part.stopped = True


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_the_first_use_starts_it_and_it_stops_when_idle() -> None:
    parts = Parts()
    demand = OnDemand("p", parts.start, parts.stop, idle_s=300.0)
    assert demand.use() is None  # starting: the caller answers another way meanwhile
    part = await demand.ready()
    assert part.number == 1 and demand.use() is part and demand.running
    demand.idle_s = 0.05
    await until(lambda: part.stopped)
    assert not demand.running and demand.part is None
    again = await demand.ready()  # a later use starts a new one
    assert again.number == 2 and demand.starts == 2
    await demand.close()
    assert again.stopped


async def test_a_holder_keeps_it_and_the_idle_time_counts_from_the_release() -> None:
    parts = Parts()
    demand = OnDemand("p", parts.start, parts.stop, idle_s=0.01)
    demand.hold("conn-1")
    part = await demand.ready()
    # Many idle periods pass while held: it keeps running (no timing can make it stop).
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not part.stopped and demand.holders == 1
    demand.release("conn-2")  # never held: changes nothing
    assert demand.holders == 1
    demand.release("conn-1")
    await until(lambda: part.stopped)
    assert demand.starts == 1


async def test_a_failed_start_is_raised_to_who_waits_and_the_next_use_tries_again() -> None:
    parts = Parts()
    parts.fail_next = True
    demand = OnDemand("p", parts.start, parts.stop)
    with pytest.raises(ConnectionError):
        await demand.ready()
    assert not demand.running
    part = await demand.ready()
    assert part.number == 1
    await demand.close()
    assert part.stopped and not demand.running


async def test_close_stops_a_held_part_and_a_start_under_way() -> None:
    parts = Parts()
    demand = OnDemand("p", parts.start, parts.stop)
    demand.hold("conn-1")
    part = await demand.ready()
    await demand.close()
    assert part.stopped and demand.holders == 0
    demand.use()
    await demand.close()  # cancelled while starting: nothing left running
    assert not demand.running and all(p.stopped for p in parts.started)
