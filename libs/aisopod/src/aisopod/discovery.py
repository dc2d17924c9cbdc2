"""Who is alive: nats.micro discovery (`$SRV.INFO`, `$SRV.STATS`) and config reports.

Every service instance registers with nats.micro (name = service, metadata.instance = its
instance id), and every instance answers `<prefix>.control.config.report` with the hash it
runs. Both are scatter-gather requests: publish once, collect replies until the replies go
quiet (or a cap), since nobody knows in advance how many instances there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg

from aisopod import codec
from aisopod.bus import Bus

QUIET_S = 0.15
CAP_S = 1.0


@dataclass(frozen=True, slots=True)
class Instance:
    """One live service process as nats.micro reports it."""

    service: str
    instance: str
    micro_id: str
    version: str
    raw: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.instance)


async def scatter(
    bus: Bus, subject: str, payload: bytes = b"", *, quiet: float = QUIET_S, cap: float = CAP_S
) -> list[dict[str, Any]]:
    """Publish `payload` on `subject` and gather every JSON reply until none arrives for
    `quiet` seconds (at most `cap` seconds in all).

    A cancellation of the caller always ends it: replies are taken from a queue of ours
    under `asyncio.timeout`, not with nats-py's `next_msg`, whose inner task can return the
    reply that arrives together with a cancellation and so drop the cancellation (a task
    that gathers in a loop, such as http-api's /status discovery, then never stops).
    """
    nc = bus.nc
    inbox = nc.new_inbox()
    arrived: asyncio.Queue[Msg] = asyncio.Queue()

    async def take(msg: Msg) -> None:
        arrived.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=take)
    replies: list[dict[str, Any]] = []
    try:
        await nc.publish(subject, payload, reply=inbox)
        deadline = time.monotonic() + cap
        # The first reply may take longer than the quiet gap (a busy process): wait for it
        # up to the cap, then stop at the first silence.
        wait = cap
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(wait, remaining)):
                    msg = await arrived.get()
            except TimeoutError:
                break
            with contextlib.suppress(ValueError):
                body = codec.loads(msg.data)
                if isinstance(body, dict):
                    replies.append(body)
            wait = quiet
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return replies


def _instance(body: dict[str, Any], prefix: str) -> Instance | None:
    """The instance a reply describes, or None when it is malformed or belongs to another
    deployment on the same NATS account (its metadata names another subject prefix)."""
    name, micro_id = body.get("name"), body.get("id")
    if not isinstance(name, str) or not isinstance(micro_id, str):
        return None
    metadata = body.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("prefix", prefix) != prefix:
        return None
    instance = metadata.get("instance") if isinstance(metadata, dict) else None
    return Instance(
        service=name,
        instance=str(instance or micro_id),
        micro_id=micro_id,
        version=str(body.get("version") or ""),
        raw=body,
    )


async def discover(bus: Bus, *, cap: float = CAP_S) -> list[Instance]:
    """Every registered service instance (`$SRV.INFO`), sorted by service and instance."""
    replies = await scatter(bus, "$SRV.INFO", cap=cap)
    found = [_instance(body, bus.subjects.prefix) for body in replies]
    unique = {i.micro_id: i for i in found if i is not None}
    return sorted(unique.values(), key=lambda i: i.key)


async def service_stats(bus: Bus, *, cap: float = CAP_S) -> list[Instance]:
    """Like `discover`, with nats.micro stats (`started`, per-endpoint counters) in `raw`."""
    replies = await scatter(bus, "$SRV.STATS", cap=cap)
    found = [_instance(body, bus.subjects.prefix) for body in replies]
    unique = {i.micro_id: i for i in found if i is not None}
    return sorted(unique.values(), key=lambda i: i.key)


@dataclass(frozen=True, slots=True)
class ConfigReport:
    service: str
    instance: str
    hash: str


async def config_reports(bus: Bus, *, cap: float = CAP_S) -> dict[tuple[str, str], str]:
    """(service, instance) → config hash, from every instance that answers."""
    out: dict[tuple[str, str], str] = {}
    for body in await scatter(bus, bus.subjects.control("config.report"), cap=cap):
        service, instance, digest = body.get("service"), body.get("instance"), body.get("hash")
        if isinstance(service, str) and isinstance(instance, str) and isinstance(digest, str):
            out[(service, instance)] = digest
    return out
