"""WebSocket edge policy (handshake, limits, heartbeat, resume; docs/protocol/websocket.md)
and proxy trust."""

from pydantic import Field

from aisopod.config.sections.base import Section


class GatewaySection(Section):
    handshake_timeout_ms: int = Field(10_000, ge=100, le=120_000)
    max_payload: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_payload_pre_hello: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    max_buffered_bytes: int = Field(8 * 1024 * 1024, ge=64 * 1024)
    tick_interval_ms: int = Field(30_000, ge=1_000)
    ping_interval_ms: int = Field(20_000, ge=1_000)
    max_consecutive_forbidden: int = Field(10, ge=1)
    requests_per_second: float = Field(200.0, gt=0, description="per-connection request rate")
    request_burst: int = Field(400, ge=1)
    max_in_flight: int = Field(
        256, ge=1, le=65_536, description="concurrent requests per connection"
    )
    # resume: at most this many events are replayed to one client; more is a gap.
    replay_max_events: int = Field(10_000, ge=0, le=200_000)
    node_invoke_timeout_ms: int = Field(
        30_000, ge=100, le=86_400_000, description="node.invoke wait when timeoutMs is absent"
    )
    # sessions.list at the edge: each ws-gateway keeps every session's listed form while
    # the bucket holds at most this many; past it the runtime answers (docs/ws-gateway.md).
    sessions_listed_max: int = Field(
        10_000, ge=0, le=100_000, description="sessions ws-gateway keeps for sessions.list"
    )
    # A connection's presence entry reaches KV only once it has been open this long (nodes:
    # at once); this replica lists it from the start (docs/ws-gateway.md, Presence). Capped
    # below the bucket TTL (45 s), so an entry still in its grace never looks stale here.
    presence_grace_ms: int = Field(
        250, ge=0, le=30_000, description="delay before a client's presence is shared"
    )
    # Proxies whose X-Forwarded-For is believed; the client IP is the right-most other hop.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
