"""Traefik static and dynamic configuration, one renderer for local and compose modes.

Routes (docs/protocol/http.md): `/ws` to ws-gateway, the API paths to http-api, `/health`
and `/ready` (and their `/healthz`, `/readyz` aliases) open, everything else to static-ui.
Traefik only routes: no forwardAuth. The service that acts on a request asks auth and
ratelimit itself over NATS (one Traefik exchange per request instead of three;
docs/security.md), and believes the request came through here only by the edge proof:
`edge-proof` sets `X-Aisopod-Edge: <secret>` on every route to http-api and ws-gateway,
overwriting any copy a client sent (aisopod/edgeproof.py). The secret never appears in
`routes.yml`: the `edge-proof` middleware lives in its own file (`edge-proof.yml`, 0600,
written by the edge sync from the launcher's or the deployment's secret) or, in Kubernetes,
comes from edge-sync over Traefik's HTTP provider. Every route ends with `retry` (or
`retry-unsent`, see API_WRITE_CHAIN), which resends a request only when no server accepted
its connection (a replica that just died), so it is safe for any method.

`strip-identity` still removes every identity-like header a client sends: no service reads
them from HTTP any more, so this is defence in depth (a service that copied request
headers onto NATS messages would otherwise forward a forged principal).

The dynamic configuration is split into files, one per concern, so each can change alone:
`routes.yml` (this module's `dynamic_config`), `cors.yml` (from the gateway config, live),
`edge-proof.yml` (the proof), `tls.yml` (certificates) and `redirect.yml` (optional
HTTP→HTTPS). They share one file provider directory that Traefik watches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aisopod import principal
from aisopod.edgeproof import HEADER as EDGE_PROOF_HEADER
from aisopod.principal import IDENTITY_HEADERS
from aisopod.probes import PROBE_PATHS

# The live files' renderers live in livefiles.py (the launcher's supervising process
# follows them and stays lean); re-exported here with the rest of the configuration.
from aisopod_ops.launcher.livefiles import CORS_ALLOW_HEADERS as CORS_ALLOW_HEADERS
from aisopod_ops.launcher.livefiles import CORS_EXPOSE_HEADERS as CORS_EXPOSE_HEADERS
from aisopod_ops.launcher.livefiles import EDGE_PROOF_MIDDLEWARE as EDGE_PROOF_MIDDLEWARE
from aisopod_ops.launcher.livefiles import RATELIMIT_HEADERS as RATELIMIT_HEADERS
from aisopod_ops.launcher.livefiles import cors_config as cors_config
from aisopod_ops.launcher.livefiles import cors_middleware as cors_middleware
from aisopod_ops.launcher.livefiles import edge_proof_config as edge_proof_config
from aisopod_ops.launcher.livefiles import redirect_config as redirect_config
from aisopod_ops.launcher.livefiles import tls_config as tls_config
from aisopod_ops.launcher.process import SERVICE_DRAIN_S

# Every identity-like header a client could forge (also the bare NATS header names, in case
# a service copies request headers onto NATS messages): removed at the edge on every route.
_PRINCIPAL_HEADERS = (
    principal.H_PRINCIPAL,
    principal.H_ROLE,
    principal.H_SCOPES,
    principal.H_CONN,
    principal.H_IP,
    principal.H_DEVICE,
    principal.H_AUTH_METHOD,
    principal.H_TRACE,
    principal.H_INSTANCE,
    principal.H_ORIGIN_CONN,
)
# Set by the edge on a request it refuses for its encoded path (see ENCODED_REFUSED): the
# service answers 400 in the API's own error shape, with a request id.
EDGE_REFUSED_HEADER = "X-Aisopod-Edge-Refused"
STRIPPED_HEADERS = tuple(
    dict.fromkeys(
        [
            *IDENTITY_HEADERS,
            *(f"X-{h}" for h in _PRINCIPAL_HEADERS),
            *_PRINCIPAL_HEADERS,
            EDGE_REFUSED_HEADER,
            # `edge-proof` sets it after this on the routes that carry it; no other backend
            # (static-ui) needs to see a client's guess at it.
            EDGE_PROOF_HEADER,
        ]
    )
)
API_PATHS = ("/v1", "/hooks", "/tools", "/status", "/canvas", "/a2ui")

# Encoded characters in a path. Refused everywhere (a proxy and a service could read such a
# path differently: `%2F` is a slash to one and a character to the other), except `%2F` in
# `GET /v1/models/{id}`: model ids are `aisopod/main`, `fake/fake-small`, and the OpenAI SDKs
# percent-encode that slash. That route only compares the decoded id with the listed ones,
# so the slash cannot reach anything else. The entrypoint lets them all through and the
# routers decide, so a refusal on an API path is answered by http-api in the API's error
# shape (router `api-encoded`) instead of by Traefik in plain text.
# Traefik's path matchers read the raw path only when it differs from the default encoding
# of the decoded one: `%2F` and `%3B` stay visible, while `%5C`, `%00`, `%3F`, `%23` arrive
# decoded (`\`, NUL, `?`, `#`) and `%25` as a `%` not followed by two hex digits (a `%252F`
# shows as `%2F`). Both forms are matched; a literal `;` is a legal path character.
_ENCODED_NOT_SLASH = r"%(5[cC]|00|3[bB]|25|3[fF]|23)|[\\?#\x00]|%($|.$|[^0-9A-Fa-f]|.[^0-9A-Fa-f])"
_ENCODED_ANY = r"%(2[fF]|5[cC]|00|3[bB]|25|3[fF]|23)|[\\?#\x00]|%($|.$|[^0-9A-Fa-f]|.[^0-9A-Fa-f])"
MODELS_PREFIX = "/v1/models/"
_ENCODED_FLAGS = (
    "allowEncodedSlash",
    "allowEncodedBackSlash",
    "allowEncodedNullCharacter",
    "allowEncodedSemicolon",
    "allowEncodedPercent",
    "allowEncodedQuestionMark",
    "allowEncodedHash",
)

# Middleware chains per route, in order. `cors` and `edge-proof` live in their own files.
API_CHAIN = (
    "cors",
    "encoded-strict",
    "strip-identity",
    EDGE_PROOF_MIDDLEWARE,
    "security-headers",
    "retry",
)
HOOKS_CHAIN = API_CHAIN
# GET /v1/models/{id}: `%2F` allowed, nothing else (see _ENCODED_ANY).
MODELS_CHAIN = tuple("encoded-slash-only" if m == "encoded-strict" else m for m in API_CHAIN)
# An API path with a refused encoded character: marked, then answered 400 by http-api.
ENCODED_REFUSED_CHAIN = (
    "cors",
    "strip-identity",
    EDGE_PROOF_MIDDLEWARE,
    "edge-refused-encoded",
    "security-headers",
    "retry",
)
# `retry` also resends idempotent requests on a 502, and to retry on a status Traefik holds
# every response back: ~100 µs of its CPU per proxied request, ~2 ms per WebSocket upgrade
# (3.75 → 1.6 ms per handshake, P3). Requests it would never resend on a status take
# `retry-unsent` instead (same attempts, connection failures only): writes to the API (a
# router of their own, `api-write`) and `/ws` upgrades (a replica that dies holding one
# costs the client a reconnect, which every WebSocket client does anyway; the protocol
# resumes).
API_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
API_WRITE_CHAIN = (*API_CHAIN[:-1], "retry-unsent")
WS_CHAIN = ("encoded-strict", "strip-identity", EDGE_PROOF_MIDDLEWARE, "retry-unsent")
HEALTH_CHAIN = API_CHAIN
UI_CHAIN = ("encoded-strict", "strip-identity", "retry")

HEALTH_INTERVAL = "1s"
# How long a replica's /ready may take before the check counts as failed, which takes the
# replica out of the pool until a check passes. With other replicas to take its traffic, a
# replica that stalls a second is better out. The only replica is better slow than out: a
# failed check there turns a busy moment into 503s for everyone (seen with `--small`, one
# event loop for every service, handshaking 1,000 WebSockets at load 16). A draining
# replica answers 503 at once and a dead one refuses the connection, so neither waits for
# the timeout.
HEALTH_TIMEOUT = "1s"
HEALTH_TIMEOUT_ALONE = "5s"
# Below uvicorn's keep-alive timeout (5 s): Traefik drops an idle connection before the
# service does, so a request is never written onto a socket the service is closing.
IDLE_CONN_TIMEOUT = "4s"
# Idle keep-alive connections kept per backend. A named serversTransport without it keeps
# Go's default of 2, so under concurrency nearly every proxied request opened (and Traefik
# closed) a new connection to its service: 2,000 TIME_WAIT sockets towards http-api in 4 s
# at c=64 before, ~60 after. Above the concurrency one edge sees on 2 cores.
MAX_IDLE_CONNS_PER_HOST = 256
DRAIN_TIMEOUT_S = SERVICE_DRAIN_S  # how long a service finishes work (process.py)


@dataclass
class Upstreams:
    """Base URLs of each service's replicas, e.g. `http://127.0.0.1:8101`."""

    ws_gateway: list[str]
    http_api: list[str]
    static_ui: list[str]


def _entry_point(
    address: str,
    trusted_ips: list[str],
    grace_s: int,
    accept_grace_s: int,
    routers_check_encoding: bool = True,
) -> dict[str, Any]:
    return {
        "address": address,
        # Only these peers may set X-Forwarded-*; anyone else's are replaced (client IP).
        "forwardedHeaders": {"trustedIPs": list(trusted_ips)},
        "http": _entry_http(routers_check_encoding),
        "transport": {
            "lifeCycle": {
                # Keep accepting while a load balancer in front takes this Traefik out...
                "requestAcceptGraceTimeout": f"{accept_grace_s}s",
                # ...then let in-flight requests (SSE streams) run as long as a service's
                # own drain would let them.
                "graceTimeOut": f"{grace_s}s",
            }
        },
    }


def _entry_http(routers_check_encoding: bool) -> dict[str, Any]:
    """Ambiguous encoded characters (%2F, %5C, %00, %3B, %25, %3F, %23) are refused so
    Traefik and a service never read one path differently. On the public entrypoints every
    router checks them itself (`encoded-strict`, or `api-encoded` for API paths: see
    _ENCODED_ANY); elsewhere the entrypoint refuses them."""
    return {
        # `X_Aisopod_Principal` must not pass as `X-Aisopod-Principal` to a WSGI-style app.
        "aliasHeadersStrategy": "delete",
        "encodedCharacters": dict.fromkeys(_ENCODED_FLAGS, routers_check_encoding),
    }


def access_log_config(path: str) -> dict[str, Any]:
    """JSON access log without secrets: no request headers (Authorization, cookies,
    x-aisopod-token), no query string (tokens in URLs), no basic-auth user name."""
    return {
        "filePath": path,
        "format": "json",
        "fields": {
            "defaultMode": "keep",
            "names": {"ClientUsername": "drop"},
            "headers": {"defaultMode": "drop"},
            "queryParameters": {"defaultMode": "drop"},
        },
    }


def static_config(
    *,
    http_address: str,
    https_address: str | None,
    ping_address: str,
    dynamic_dir: str,
    trusted_ips: list[str],
    access_log: str | None = None,
    log_level: str = "WARN",
    grace_s: int = DRAIN_TIMEOUT_S,
    accept_grace_s: int = 0,
) -> dict[str, Any]:
    entry_points: dict[str, Any] = {
        "web": _entry_point(http_address, trusted_ips, grace_s, accept_grace_s),
        "ping": {"address": ping_address, "http": _entry_http(routers_check_encoding=False)},
    }
    if https_address:
        websecure = _entry_point(https_address, trusted_ips, grace_s, accept_grace_s)
        websecure["http"]["tls"] = {}
        entry_points["websecure"] = websecure
    config: dict[str, Any] = {
        "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
        # The fast proxy (HTTP/1.1 to the services, which is all they speak) reads a
        # request's whole body before it sends the request on. Go's standard proxy streams
        # it, and that races: when a service answers a streamed response before the
        # transport has read the client's body to its end, the immediate header flush makes
        # the HTTP/1 server close that body under the transport, which then drops the
        # backend connection and cuts the stream after its head (about 1 in 6,000 streamed
        # /v1 requests here, `OriginStatus 0` in the access log). See docs/http-api.md.
        "experimental": {"fastProxy": {}},
        "entryPoints": entry_points,
        "ping": {"entryPoint": "ping"},
        "providers": {"file": {"directory": dynamic_dir, "watch": True}},
        "log": {"level": log_level, "format": "json"},
        "api": {"dashboard": False},
    }
    if access_log:
        config["accessLog"] = access_log_config(access_log)
    return config


def _service(
    urls: list[str], health: bool = True, interval: str = HEALTH_INTERVAL
) -> dict[str, Any]:
    lb: dict[str, Any] = {
        "servers": [{"url": u} for u in urls],
        "passHostHeader": True,
        "serversTransport": "edge",
    }
    if health:
        # /ready turns 503 the moment a replica starts draining: it leaves the pool
        # within one interval; `retry` covers requests that race the check.
        lb["healthCheck"] = {
            "path": "/ready",
            "interval": interval,
            "unhealthyInterval": "500ms",  # a (re)started replica rejoins quickly
            "timeout": HEALTH_TIMEOUT if len(urls) > 1 else HEALTH_TIMEOUT_ALONE,
        }
    return {"loadBalancer": lb}


def replica_service(routes: dict[str, Any], service: str) -> dict[str, Any]:
    """The load balancer of `service` in rendered routes: behind http-api's failover, the
    replicas (not the fallback)."""
    services = routes["http"]["services"]
    entry = services[service]
    while "failover" in entry:
        entry = services[entry["failover"]["service"]]
    return dict(entry["loadBalancer"])


def edge_middlewares() -> dict[str, Any]:
    """The hardening middlewares shared by every route (not CORS: see `cors_config`)."""
    strip = dict.fromkeys(STRIPPED_HEADERS, "")  # an empty value removes the header
    return {
        "strip-identity": {"headers": {"customRequestHeaders": strip}},
        "security-headers": {
            "headers": {
                "contentTypeNosniff": True,
                "referrerPolicy": "no-referrer",
            }
        },
        "retry": {
            "retry": {
                # Any method: resent when no byte reached a server (connection refused: a
                # replica that died between two health checks). Idempotent methods only
                # (never POST/PATCH): also resent on a 502, Traefik's answer when a replica
                # dies holding the request. The round robin may pick the dead replica
                # again, so the back-off (~0.2 s doubling to ~0.4 s, ~1 s in all) outlasts
                # one health-check interval: by the last attempt it has left the pool.
                # Never after `timeout`, so a long request is not replayed.
                "attempts": 5,
                "initialInterval": "200ms",
                "status": ["502"],
                "timeout": "5s",
            }
        },
        "retry-unsent": {"retry": {"attempts": 5, "initialInterval": "200ms", "timeout": "5s"}},
        "encoded-strict": {"encodedCharacters": dict.fromkeys(_ENCODED_FLAGS, False)},
        "encoded-slash-only": {
            "encodedCharacters": {flag: flag == "allowEncodedSlash" for flag in _ENCODED_FLAGS}
        },
        "edge-refused-encoded": {
            "headers": {"customRequestHeaders": {EDGE_REFUSED_HEADER: "encoded-path"}}
        },
    }


def dynamic_config(up: Upstreams, *, entry_points: list[str]) -> dict[str, Any]:
    """The routes and the shared middlewares (not `cors` nor `edge-proof`: live files)."""
    middlewares: dict[str, Any] = edge_middlewares()
    routers: dict[str, Any] = {}

    def router(name: str, rule: str, service: str, mws: tuple[str, ...], priority: int) -> None:
        routers[name] = {
            "rule": rule,
            "service": service,
            "middlewares": list(mws),
            "priority": priority,
            "entryPoints": entry_points,
        }

    api_rule = " || ".join(f"PathPrefix(`{p}`)" for p in API_PATHS)
    health_rule = " || ".join(f"Path(`{p}`)" for p in PROBE_PATHS)
    router("health", health_rule, "http-api", HEALTH_CHAIN, 1000)
    router("ws", "Path(`/ws`)", "ws-gateway", WS_CHAIN, 900)
    # OpenClaw clients (docs/openclaw.md): the same service and limits, another codec.
    router("openclaw", "Path(`/openclaw`)", "ws-gateway", WS_CHAIN, 900)
    models = f"PathPrefix(`{MODELS_PREFIX}`) && Method(`GET`)"
    router(
        "api-models",
        f"{models} && !PathRegexp(`{_ENCODED_NOT_SLASH}`)",
        "http-api",
        MODELS_CHAIN,
        880,
    )
    router(
        "api-encoded",
        f"({api_rule}) && PathRegexp(`{_ENCODED_ANY}`)",
        "http-api",
        ENCODED_REFUSED_CHAIN,
        870,
    )
    router("hooks", "PathPrefix(`/hooks`)", "http-api", HOOKS_CHAIN, 850)
    router("api", api_rule, "http-api", API_CHAIN, 800)
    writes = " || ".join(f"Method(`{m}`)" for m in API_WRITE_METHODS)
    router("api-write", f"({api_rule}) && ({writes})", "http-api", API_WRITE_CHAIN, 810)
    router("ui", "PathPrefix(`/`)", "static-ui", UI_CHAIN, 1)
    return {
        "http": {
            "routers": routers,
            "middlewares": middlewares,
            "serversTransports": {
                "edge": {
                    "maxIdleConnsPerHost": MAX_IDLE_CONNS_PER_HOST,
                    "forwardingTimeouts": {"idleConnTimeout": IDLE_CONN_TIMEOUT},
                }
            },
            "services": {
                "ws-gateway": _service(up.ws_gateway),
                # While no http-api replica is healthy, the static server answers the API's
                # paths with a 503 in the API's own error shape and a request id (its
                # Caddyfile), instead of Traefik's plain-text 503/502.
                "http-api": {
                    "failover": {"service": "http-api-replicas", "fallback": "http-api-down"}
                },
                "http-api-replicas": _service(up.http_api),
                "http-api-down": _service(up.static_ui, health=False),
                "static-ui": _service(up.static_ui, health=False),
            },
        }
    }


# -- CORS, edge proof, TLS and redirect: the live files next to routes.yml ----------------
