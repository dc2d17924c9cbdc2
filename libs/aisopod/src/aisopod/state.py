"""JetStream state (docs/protocol/architecture.md), provisioned idempotently by the services.

Any service may start first, so each one ensures what it touches exists (grants.py names
it); creating what already exists with the same config is a no-op. A changed config
(limits, replicas) is brought in line by the state's writers only: a reader may create
what is missing but never update it, so a compromised reader cannot shorten a retention.
Tools and tests without grants provision and reconcile everything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from aisopod.grants import Access, Grants
from aisopod.subjects import Subjects

log = logging.getLogger("aisopod.state")

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    ttl_s: float = 0.0
    history: int = 1
    description: str = ""


BUCKETS: tuple[Bucket, ...] = (
    Bucket("config", history=16, description="the gateway configuration document"),
    Bucket("agents", description="agent definitions"),
    Bucket("sessions", description="session metadata"),
    Bucket("cron", description="cron jobs, run records and leases"),
    Bucket(
        "models",
        description="what each provider's upstream listed at /models (runtime; edge reads)",
    ),
    Bucket(
        "heartbeat",
        description="heartbeat jobs and leases, queued system events, the last heartbeats",
    ),
    # Run records (and session lanes) are kept a week after their last write: long past
    # any run's own timeout (at most a day), so a live run or held lane never expires.
    Bucket("runs", ttl_s=7 * DAY, description="agent-run status"),
    Bucket("devices", description="paired devices (token hashes only)"),
    Bucket("pairing", ttl_s=5 * MINUTE, description="pending pairing requests"),
    Bucket("nodes", description="paired nodes"),
    Bucket("approvals", description="pending exec approvals and the exec policy"),
    Bucket("presence", ttl_s=45.0, description="connected clients, refreshed by ws-gateway"),
    Bucket(
        "nodeinfo",
        ttl_s=30 * DAY,
        description="each node's last declaration (caps, commands), kept after it disconnects",
    ),
    Bucket("ratelimit", ttl_s=HOUR, description="shared limiter state"),
    Bucket("dedupe", ttl_s=5 * MINUTE, description="idempotency keys → first result"),
    Bucket("hooks", ttl_s=DAY, description="accepted webhook deliveries"),
    Bucket("responses", ttl_s=30 * DAY, description="stored /v1/responses objects"),
    Bucket("auth", description="auth secrets (hashes only): admin token, passwords"),
    Bucket("updates", description="rolling-restart progress (update.run)"),
    Bucket("wizard", ttl_s=HOUR, description="onboarding wizard sessions"),
    # Monthly spend per agent and API token (budgets): kept past the month they count.
    Bucket("usage", ttl_s=62 * DAY, description="monthly usage counters (budgets)"),
    # Hourly roll-ups of stream USAGE (usage.* reads): kept as long as the stream's records.
    Bucket("usage_hours", ttl_s=400 * DAY, description="hourly usage roll-ups"),
)


@dataclass(frozen=True, slots=True)
class Stream:
    name: str
    subject: str  # relative to the prefix
    max_age_s: float
    max_msgs: int = -1
    max_bytes: int = -1
    max_msgs_per_subject: int = -1


STREAMS: tuple[Stream, ...] = (
    # Bounded so resume has a horizon; past it, hello.resume.gap tells the client to refetch.
    Stream("EVENTS", "evt.>", max_age_s=HOUR, max_msgs=200_000, max_bytes=512 * 1024 * 1024),
    Stream("TRANSCRIPTS", "transcript.>", max_age_s=0, max_bytes=4 * 1024**3),
    Stream("LOGS", "logs.>", max_age_s=DAY, max_msgs=500_000, max_bytes=512 * 1024 * 1024),
    # One record per finished run (usage.*): the longest window asked (366 days) and more.
    Stream("USAGE", "usage.>", max_age_s=400 * DAY, max_bytes=1024**3),
)

OBJECT_STORES: tuple[str, ...] = ("canvas",)


def bucket_ttl(name: str) -> float:
    """The TTL of bucket `name` in seconds (0: none)."""
    return next(b.ttl_s for b in BUCKETS if b.name == name)


def stream_name(prefix: str, name: str) -> str:
    """Stream and bucket names carry the prefix when it is not the default, so two
    gateways can share one NATS."""
    return name if prefix == "aisopod" else f"{prefix.upper()}_{name}"


def bucket_name(prefix: str, name: str) -> str:
    return name if prefix == "aisopod" else f"{prefix}_{name}"


async def ensure_state(
    js: JetStreamContext, subjects: Subjects, *, replicas: int = 1, grants: Grants | None = None
) -> None:
    """Provision what `grants` name (a service's own state), or everything without;
    reconcile only what `grants` may write."""
    for bucket in BUCKETS:
        if grants is None or bucket.name in grants.buckets:
            owner = grants is None or grants.buckets[bucket.name] is Access.WRITE
            await _ensure_bucket(js, subjects.prefix, bucket, replicas, owner=owner)
    for stream in STREAMS:
        if grants is None or stream.name in grants.streams:
            owner = grants is None or grants.streams[stream.name] is Access.WRITE
            await _ensure_stream(js, subjects, stream, replicas, owner=owner)
    for store in OBJECT_STORES:
        if grants is not None and store not in grants.object_stores:
            continue
        name = bucket_name(subjects.prefix, store)
        try:
            await js.object_store(name)
        except (NotFoundError, BucketNotFoundError):
            await js.create_object_store(
                name, config=ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas)
            )
        else:
            if grants is None or grants.object_stores[store] is Access.WRITE:
                await _reconcile(js, f"OBJ_{name}", f"object store {name}", replicas=replicas)


async def _ensure_bucket(
    js: JetStreamContext, prefix: str, bucket: Bucket, replicas: int, *, owner: bool
) -> None:
    name = bucket_name(prefix, bucket.name)
    try:
        await js.key_value(name)
    except (NotFoundError, BucketNotFoundError):
        pass
    else:
        if not owner:
            return
        await _reconcile(
            js,
            f"KV_{name}",
            f"bucket {name}",
            replicas=replicas,
            history=bucket.history,
            ttl_s=bucket.ttl_s,
            description=bucket.description,
        )
        return
    config = KeyValueConfig(
        bucket=name,
        description=bucket.description,
        history=bucket.history,
        ttl=bucket.ttl_s or None,
        storage=StorageType.FILE,
        replicas=replicas,
    )
    try:
        await js.create_key_value(config=config)
    except BadRequestError:
        # Another service created it between our look-up and create: fine.
        await js.key_value(name)


async def _reconcile(
    js: JetStreamContext,
    stream: str,
    what: str,
    *,
    replicas: int,
    history: int | None = None,
    ttl_s: float | None = None,
    description: str | None = None,
) -> None:
    """Bring an existing bucket's or object store's backing stream in line with what this
    version wants (replicas above all: moving from one NATS node to a cluster must move
    the state onto every node, not leave it on one), logged."""
    config = (await js.stream_info(stream)).config
    changes: dict[str, tuple[object, object]] = {}
    if (config.num_replicas or 1) != replicas:
        changes["num_replicas"] = (config.num_replicas, replicas)
    if history is not None and config.max_msgs_per_subject != history:
        changes["max_msgs_per_subject"] = (config.max_msgs_per_subject, history)
    if ttl_s is not None and abs((config.max_age or 0.0) - ttl_s) > 0.001:
        changes["max_age"] = (config.max_age, ttl_s or None)
    if description is not None and (config.description or "") != description:
        changes["description"] = (config.description, description)
    if not changes:
        return
    for field_name, (_, wanted) in changes.items():
        setattr(config, field_name, wanted)
    if config.max_age and (config.duplicate_window or 0) > config.max_age:
        config.duplicate_window = config.max_age  # the server refuses a window past the age
    await js.update_stream(config)
    log.info(
        "reconciled %s: %s",
        what,
        ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items()),
    )


async def _ensure_stream(
    js: JetStreamContext, subjects: Subjects, stream: Stream, replicas: int, *, owner: bool
) -> None:
    config = StreamConfig(
        name=stream_name(subjects.prefix, stream.name),
        subjects=[f"{subjects.prefix}.{stream.subject}"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=stream.max_age_s or None,
        max_msgs=stream.max_msgs,
        max_bytes=stream.max_bytes,
        max_msgs_per_subject=stream.max_msgs_per_subject,
        num_replicas=replicas,
        duplicate_window=120.0,
        allow_direct=True,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with another config (limits changed between versions): its writer brings
        # it in line; a reader takes it as it is.
        if owner:
            await js.update_stream(config)
        else:
            await js.stream_info(config.name or "")
