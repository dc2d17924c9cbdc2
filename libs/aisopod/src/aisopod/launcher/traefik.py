"""Traefik static and dynamic configuration, one renderer for local and compose modes.

Routes of http.md: `/ws` to ws-gateway (ratelimit only: auth happens in the handshake),
the API paths to http-api behind `cors → ratelimit → auth → strip identity → headers`,
`/health` and `/ready` open, everything else to static-ui. Middleware order matters: CORS
first, so preflights are answered by Traefik and never need a credential.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IDENTITY_HEADERS = (
    "X-Aisopod-Principal",
    "X-Aisopod-Role",
    "X-Aisopod-Scopes",
    "X-Aisopod-Auth-Method",
    "X-Aisopod-Device-Id",
    "X-Aisopod-Client-Ip",
)
RATELIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
API_PATHS = ("/v1", "/hooks", "/tools", "/status", "/canvas", "/a2ui")
INTERNAL_ENTRYPOINT = "internal"


@dataclass
class Upstreams:
    """Base URLs of each service's replicas, e.g. `http://127.0.0.1:8101`."""

    ws_gateway: list[str]
    http_api: list[str]
    static_ui: list[str]
    auth: list[str]
    ratelimit: list[str]
    allowed_origins: list[str] = field(default_factory=list)


def static_config(
    *,
    http_address: str,
    https_address: str | None,
    ping_address: str,
    dynamic_dir: str,
    trusted_ips: list[str],
    access_log: str | None = None,
    log_level: str = "WARN",
    internal_address: str | None = None,
) -> dict[str, Any]:
    """`internal_address`: a loopback-only entrypoint on which Traefik load-balances the
    replicas of a forwardAuth service (forwardAuth itself calls exactly one address)."""
    forwarded = {"trustedIPs": trusted_ips}
    http_opts = {"aliasHeadersStrategy": "delete"}
    entry_points: dict[str, Any] = {
        "web": {
            "address": http_address,
            "forwardedHeaders": forwarded,
            "http": http_opts,
            "transport": {"lifeCycle": {"requestAcceptGraceTimeout": "0s", "graceTimeOut": "10s"}},
        },
        "ping": {"address": ping_address},
    }
    if internal_address:
        entry_points[INTERNAL_ENTRYPOINT] = {
            "address": internal_address,
            "forwardedHeaders": forwarded,
            "http": http_opts,
        }
    if https_address:
        entry_points["websecure"] = {
            "address": https_address,
            "forwardedHeaders": forwarded,
            "http": {**http_opts, "tls": {}},
        }
    config: dict[str, Any] = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        "entryPoints": entry_points,
        "ping": {"entryPoint": "ping"},
        "providers": {"file": {"directory": dynamic_dir, "watch": True}},
        "log": {"level": log_level, "format": "json"},
        "api": {"dashboard": False},
    }
    if access_log:
        config["accessLog"] = {
            "filePath": access_log,
            "format": "json",
            "fields": {
                "defaultMode": "keep",
                "headers": {"defaultMode": "drop"},
            },
        }
    return config


def _service(urls: list[str], health: bool = True, interval: str = "2s") -> dict[str, Any]:
    lb: dict[str, Any] = {"servers": [{"url": u} for u in urls], "passHostHeader": True}
    if health:
        lb["healthCheck"] = {"path": "/ready", "interval": interval, "timeout": "1s"}
    return {"loadBalancer": lb}


def _failover_chain(name: str, urls: list[str]) -> dict[str, Any]:
    """Services `name` → first URL while it is up, else the next, and so on.

    The ratelimit replicas decide every key at the first live one (its `primary`
    ownership), so sending forwardAuth there first keeps each decision in the process
    that received it. A passive health check marks a replica down on its first failed
    request, so the router's retry reaches the next one at once instead of waiting for
    the active check's interval.
    """
    services: dict[str, Any] = {}
    children = [f"{name}-replica-{i}" for i in range(1, len(urls) + 1)]
    for child, url in zip(children, urls, strict=True):
        lb = _service([url], interval="1s")
        lb["loadBalancer"]["passiveHealthCheck"] = {"failureWindow": "2s", "maxFailedAttempts": 1}
        services[child] = lb
    fallback = children[-1]
    for index in range(len(children) - 2, -1, -1):
        chain = name if index == 0 else f"{name}-failover-{index + 1}"
        failover: dict[str, Any] = {"service": children[index], "fallback": fallback}
        if index:  # a nested failover reports its health to the one above it
            failover["healthCheck"] = {}
        services[chain] = {"failover": failover}
        fallback = chain
    return services


def dynamic_config(
    up: Upstreams, *, entry_points: list[str], internal_url: str | None = None
) -> dict[str, Any]:
    """`internal_url`: the base URL of the internal entrypoint (static_config); with it,
    forwardAuth to ratelimit's replicas goes through a router there that prefers the
    first replica and fails over to the next (see `_failover_chain`), else straight to
    the one replica."""
    auth_url = f"{up.auth[0]}/verify"
    ratelimit_url = f"{up.ratelimit[0]}/check"
    internal: dict[str, Any] = {"routers": {}, "services": {}}
    if internal_url and len(up.ratelimit) > 1:
        ratelimit_url = f"{internal_url}/check"
        internal["routers"]["ratelimit-internal"] = {
            "rule": "Path(`/check`)",
            "service": "ratelimit",
            "middlewares": ["retry-internal"],
            "entryPoints": [INTERNAL_ENTRYPOINT],
        }
        internal["services"].update(_failover_chain("ratelimit", up.ratelimit))
    strip = {h: "" for h in IDENTITY_HEADERS}
    middlewares: dict[str, Any] = {
        "cors": {
            "headers": {
                "accessControlAllowMethods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                "accessControlAllowHeaders": [
                    "Authorization",
                    "Content-Type",
                    "Idempotency-Key",
                    "x-aisopod-agent-id",
                    "x-aisopod-session-key",
                    "x-aisopod-token",
                ],
                "accessControlAllowOriginList": up.allowed_origins,
                "accessControlExposeHeaders": [
                    "Retry-After",
                    "X-Request-Id",
                    *RATELIMIT_HEADERS,
                ],
                "accessControlMaxAge": 600,
                "addVaryHeader": True,
            }
        },
        # Identity headers a client sends are removed before forwardAuth runs, so auth
        # never sees them and the backend only sees what auth set.
        "strip-identity": {"headers": {"customRequestHeaders": strip}},
        "ratelimit": {
            "forwardAuth": {
                "address": ratelimit_url,
                "trustForwardHeader": True,
                "authResponseHeaders": list(RATELIMIT_HEADERS),
                "maxResponseBodySize": 65536,
            }
        },
        "auth": {
            "forwardAuth": {
                "address": auth_url,
                "trustForwardHeader": True,
                "authResponseHeaders": list(IDENTITY_HEADERS),
                "maxResponseBodySize": 65536,
            }
        },
        "security-headers": {
            "headers": {
                "contentTypeNosniff": True,
                "referrerPolicy": "no-referrer",
            }
        },
    }
    routers: dict[str, Any] = {}

    def router(name: str, rule: str, service: str, mws: list[str], priority: int) -> None:
        routers[name] = {
            "rule": rule,
            "service": service,
            "middlewares": mws,
            "priority": priority,
            "entryPoints": entry_points,
        }

    api_rule = " || ".join(f"PathPrefix(`{p}`)" for p in API_PATHS)
    router("health", "Path(`/health`) || Path(`/ready`)", "http-api", ["security-headers"], 1000)
    router("ws", "Path(`/ws`)", "ws-gateway", ["strip-identity", "ratelimit"], 900)
    router(
        "hooks",
        "PathPrefix(`/hooks`)",
        "http-api",
        ["cors", "strip-identity", "ratelimit", "security-headers"],
        850,
    )
    router(
        "api",
        api_rule,
        "http-api",
        ["cors", "strip-identity", "ratelimit", "auth", "security-headers"],
        800,
    )
    router("ui", "PathPrefix(`/`)", "static-ui", [], 1)
    if internal["routers"]:
        routers.update(internal["routers"])
        # A request that finds a replica dead (connection refused) is sent on to the next.
        middlewares["retry-internal"] = {"retry": {"attempts": 2}}
    return {
        "http": {
            "routers": routers,
            "middlewares": middlewares,
            "services": {
                "ws-gateway": _service(up.ws_gateway),
                "http-api": _service(up.http_api),
                "static-ui": _service(up.static_ui, health=False),
                **internal["services"],
            },
        }
    }
