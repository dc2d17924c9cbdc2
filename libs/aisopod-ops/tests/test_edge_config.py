"""Pure checks of the edge renderers: middleware chains, CORS section, edge sync files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from starlette.testclient import TestClient

from aisopod import principal
from aisopod.config.model import GatewayConfig
from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.edgeservice import edge_app
from aisopod_ops.launcher.edgesync import (
    CORS_FILE,
    EDGE_PROOF_FILE,
    REDIRECT_FILE,
    TLS_FILE,
    EdgeOptions,
    EdgeSync,
)
from aisopod_ops.launcher.tls import issue_server_certificate

UP = traefik.Upstreams(
    ws_gateway=["http://w1", "http://w2"],
    http_api=["http://h1", "http://h2"],
    static_ui=["http://ui"],
)


def test_every_route_strips_identity_proves_the_edge_and_ends_with_retry() -> None:
    http = traefik.dynamic_config(UP, entry_points=["web"])["http"]
    routers = http["routers"]
    for name, router in routers.items():
        chain = router["middlewares"]
        assert "strip-identity" in chain, name
        unsent = name in ("ws", "openclaw", "api-write")  # never resent on a status anyway
        assert chain[-1] == ("retry-unsent" if unsent else "retry"), name
        assert http["middlewares"][chain[-1]]["retry"]["attempts"] >= 3, name
        # No forwardAuth: the services ask auth and ratelimit over NATS themselves.
        assert not any("forwardAuth" in http["middlewares"].get(m, {}) for m in chain), name
        # Every route to a service that acts carries the proof; the UI route does not.
        proven = router["service"] in ("http-api", "ws-gateway")
        assert (traefik.EDGE_PROOF_MIDDLEWARE in chain) == proven, name
        if "cors" in chain:
            assert chain[0] == "cors", name  # preflights answered before any credential
    assert routers["api"]["middlewares"] == list(traefik.API_CHAIN)
    # Writes take the same chain but for the retry flavour, and win over `api`.
    assert routers["api-write"]["middlewares"][:-1] == list(traefik.API_CHAIN)[:-1]
    assert routers["api-write"]["priority"] > routers["api"]["priority"]
    assert "Method(`POST`)" in routers["api-write"]["rule"]
    assert "Method(`GET`)" not in routers["api-write"]["rule"]
    # OpenClaw clients get the WebSocket's own chain, on their own path.
    assert routers["openclaw"]["middlewares"] == routers["ws"]["middlewares"]
    assert routers["openclaw"]["rule"] == "Path(`/openclaw`)"
    # The proof is a live file of its own: the secret never sits in routes.yml.
    assert traefik.EDGE_PROOF_MIDDLEWARE not in http["middlewares"]


def test_edge_proof_middleware_sets_the_header() -> None:
    config = traefik.edge_proof_config("s3cret")
    headers = config["http"]["middlewares"]["edge-proof"]["headers"]["customRequestHeaders"]
    assert headers == {"X-Aisopod-Edge": "s3cret"}
    with pytest.raises(ValueError):
        traefik.edge_proof_config("")


def test_strip_list_covers_every_identity_header_auth_may_set() -> None:
    middlewares = traefik.dynamic_config(UP, entry_points=["web"])["http"]["middlewares"]
    stripped = middlewares["strip-identity"]["headers"]["customRequestHeaders"]
    assert set(traefik.IDENTITY_HEADERS) <= set(stripped)
    assert all(value == "" for value in stripped.values())
    assert f"X-{principal.H_CONN}" in stripped and principal.H_PRINCIPAL in stripped
    # Client headers that are not identity stay (session, agent selection: docs/protocol/http.md).
    assert "X-Aisopod-Session-Key" not in stripped


def test_replicas_are_health_checked_and_idle_connections_close_before_uvicorns() -> None:
    http = traefik.dynamic_config(UP, entry_points=["web"])["http"]
    failover = http["services"]["http-api"]["failover"]
    lb = http["services"][failover["service"]]["loadBalancer"]
    assert [s["url"] for s in lb["servers"]] == UP.http_api
    # No replica up: the static server answers in the API's shape (its Caddyfile).
    down = http["services"][failover["fallback"]]["loadBalancer"]
    assert [s["url"] for s in down["servers"]] == UP.static_ui
    assert lb["healthCheck"]["path"] == "/ready"
    assert http["serversTransports"][lb["serversTransport"]]["forwardingTimeouts"] == {
        "idleConnTimeout": "4s"
    }
    retry = http["middlewares"]["retry"]["retry"]
    assert retry["status"] == ["502"] and retry["attempts"] >= 3


def test_a_lone_replica_is_given_longer_to_answer_its_health_check() -> None:
    """Replicas leave the pool after a 1 s stall; the only one is given 5 s (busy, not gone)."""
    lone = traefik.Upstreams(ws_gateway=["http://w1"], http_api=["http://h1"], static_ui=[])
    for up, timeout in ((UP, "1s"), (lone, "5s")):
        http = traefik.dynamic_config(up, entry_points=["web"])
        for service in ("ws-gateway", "http-api"):
            assert traefik.replica_service(http, service)["healthCheck"]["timeout"] == timeout


def test_services_keep_connections() -> None:
    http = traefik.dynamic_config(UP, entry_points=["web"])["http"]
    edge = http["serversTransports"]["edge"]
    # Go's default of 2 idle connections per host made nearly every request under load
    # open a new connection to its service.
    assert edge["maxIdleConnsPerHost"] >= 64


def test_static_config_uses_the_fast_proxy() -> None:
    """Go's standard proxy cuts a streamed response when the service answers before the
    request body was read to its end (docs/http-api.md); the fast proxy reads it first."""
    static = traefik.static_config(
        http_address=":80",
        https_address=None,
        ping_address=":8082",
        dynamic_dir="/d",
        trusted_ips=[],
    )
    assert static["experimental"]["fastProxy"] == {}


def test_static_config_trusts_only_given_proxies_and_logs_no_query() -> None:
    static = traefik.static_config(
        http_address=":80",
        https_address=":443",
        ping_address=":8082",
        dynamic_dir="/d",
        trusted_ips=[],
        access_log="/log",
    )
    for entry in ("web", "websecure"):
        point = static["entryPoints"][entry]
        assert point["forwardedHeaders"]["trustedIPs"] == []
        assert point["transport"]["lifeCycle"]["graceTimeOut"] == "30s"
    fields = static["accessLog"]["fields"]
    assert fields["headers"]["defaultMode"] == "drop"
    assert fields["queryParameters"]["defaultMode"] == "drop"


def test_cors_origins_are_normalized_and_validated() -> None:
    config = GatewayConfig.model_validate(
        {"cors": {"allowedOrigins": ["HTTPS://App.Example:443/", "http://[::1]:5173", "*"]}}
    )
    assert config.cors.allowed_origins == ["https://app.example", "http://[::1]:5173", "*"]
    for bad in ("app.example", "ftp://x.example", "https://x.example/path", "https://u@x.io"):
        with pytest.raises(ValidationError):
            GatewayConfig.model_validate({"cors": {"allowedOrigins": [bad]}})


def test_edge_sync_writes_each_file_once_and_only_on_change(tmp_path: Path) -> None:
    sync = EdgeSync(
        EdgeOptions(
            dynamic_dir=tmp_path / "dynamic",
            tls_dir=tmp_path / "tls",
            redirect_https_port=8443,
            edge_secret="s3cret",
        )
    )
    files = sync.prepare(GatewayConfig())
    assert files is not None and files.ca_file is not None
    dynamic = tmp_path / "dynamic"
    proof_file = dynamic / EDGE_PROOF_FILE
    assert yaml.safe_load(proof_file.read_text()) == traefik.edge_proof_config("s3cret")
    assert proof_file.stat().st_mode & 0o777 == 0o600  # a secret: owner only
    cors = yaml.safe_load((dynamic / CORS_FILE).read_text())
    assert cors["http"]["middlewares"]["cors"]["headers"]["accessControlAllowOriginList"] == []
    redirect = yaml.safe_load((dynamic / REDIRECT_FILE).read_text())
    scheme = redirect["http"]["middlewares"]["redirect-https"]["redirectScheme"]
    assert scheme == {"scheme": "https", "port": "8443", "permanent": True}
    origins = {"cors": {"allowedOrigins": ["https://app.example"]}}
    assert sync.apply_config(GatewayConfig.model_validate(origins)) is True
    assert sync.apply_config(GatewayConfig.model_validate(origins)) is False
    assert "https://app.example" in (dynamic / CORS_FILE).read_text()
    # A new certificate in place changes tls.yml (its fingerprint); an unchanged one not.
    tls_text = (dynamic / TLS_FILE).read_text()
    assert sync.check_certificate() is False
    issue_server_certificate(tmp_path / "tls")
    assert sync.check_certificate() is True
    assert (dynamic / TLS_FILE).read_text() != tls_text


def test_edge_sync_answers_the_probes_and_their_aliases(tmp_path: Path) -> None:
    sync = EdgeSync(EdgeOptions(dynamic_dir=tmp_path / "dynamic", tls_dir=tmp_path / "tls"))
    client = TestClient(edge_app(sync))
    for path in ("/health", "/healthz"):
        assert client.get(path).json() == {"ok": True, "service": "edge-sync"}
    for path in ("/ready", "/readyz"):
        waiting = client.get(path)
        assert (waiting.status_code, waiting.json()["reasons"]) == (503, ["config"])
    sync.config_applied.set()
    for path in ("/ready", "/readyz"):
        assert client.get(path).json() == {"ready": True, "reasons": []}
