"""Which JetStream state each service may read and write: the least each one needs.

One table, two uses: a service provisions only the buckets, streams and object stores it
touches (state.py), and its NATS user may reach only those through the JetStream API
(launcher/natsconf.py). A compromised edge can then neither read the auth service's hashes
nor write a device record or the configuration to widen its own access.

Streams are written through their ordinary subjects (`<prefix>.evt.>`, `logs.>`,
`transcript.>`), which the subject permissions already govern; a stream grant here is about
reading it (consumers, message gets) and, for WRITE, owning its configuration: only a writer
may update a stream's limits or purge it (state.py reconciles on the writer's start), a
reader may only create what is missing. Names are the plain names of state.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from aisopod.services import ServiceName


class Access(StrEnum):
    READ = "read"
    WRITE = "write"  # implies read


@dataclass(frozen=True, slots=True)
class Grants:
    buckets: dict[str, Access] = field(default_factory=dict)
    streams: dict[str, Access] = field(default_factory=dict)
    object_stores: dict[str, Access] = field(default_factory=dict)


R, W = Access.READ, Access.WRITE

# Every service reads the configuration and deduplicates its idempotent methods; every one
# publishes events and logs (subject permissions), so it may look the streams up to provision.
_COMMON_BUCKETS = {"config": R, "dedupe": W}
_COMMON_STREAMS = {"EVENTS": R, "LOGS": R}

SERVICE_GRANTS: dict[ServiceName, Grants] = {
    ServiceName.AUTH: Grants(
        buckets={**_COMMON_BUCKETS, "auth": W, "devices": W, "nodes": W, "pairing": W},
        streams=_COMMON_STREAMS,
    ),
    ServiceName.RATELIMIT: Grants(
        buckets={**_COMMON_BUCKETS, "ratelimit": W}, streams=_COMMON_STREAMS
    ),
    ServiceName.WS_GATEWAY: Grants(
        # agents, cron and models: read-only, for the replicas that answer reads at the
        # edge; sessions: read-only, for the index behind OpenClaw's health (sessionindex.py).
        buckets={
            **_COMMON_BUCKETS,
            "presence": W,
            "nodeinfo": W,
            "agents": R,
            "cron": R,
            "models": R,
            "sessions": R,
        },
        streams=_COMMON_STREAMS,
    ),
    ServiceName.HTTP_API: Grants(
        # agents, models, sessions, presence: read-only, for the replicas behind /v1/models
        # and /status.
        buckets={
            **_COMMON_BUCKETS,
            "hooks": W,
            "responses": W,
            "agents": R,
            "models": R,
            "sessions": R,
            "presence": R,
        },
        streams=_COMMON_STREAMS,
        object_stores={"canvas": W},  # /canvas serves it, /a2ui/surfaces writes it
    ),
    ServiceName.RUNTIME: Grants(
        buckets={
            **_COMMON_BUCKETS,
            "config": W,  # config.* methods
            "presence": R,  # status counts connections
            "agents": W,
            "sessions": W,
            "cron": W,
            "models": W,  # each provider's /models discovery, published for the edges
            "heartbeat": W,
            "runs": W,
            "approvals": W,
            "updates": W,
            "wizard": W,
            "usage": W,  # budget counters
            "usage_hours": W,  # hourly usage roll-ups
        },
        # Every service publishes events and logs; the runtime owns the streams' limits.
        streams={"EVENTS": W, "LOGS": W, "TRANSCRIPTS": W, "USAGE": W},
        object_stores={"canvas": W},
    ),
}

# Who seeds the configuration document on first start: the one service that may write it.
CONFIG_WRITERS: frozenset[ServiceName] = frozenset(
    name for name, grants in SERVICE_GRANTS.items() if grants.buckets.get("config") is W
)


def grants_for(service: str) -> Grants | None:
    """The grants of a service by name; None for anything else (the admin user, tools),
    which may reach everything."""
    try:
        return SERVICE_GRANTS.get(ServiceName(service))
    except ValueError:
        return None
