"""What crosses the edge: the real Traefik binary with the real rendered configuration.

The service behind it is a small recorder here, so the test can see exactly which
headers a backend receives: a client's forged identity headers never reach it, the edge
proof reaches every route to http-api and ws-gateway and only those (a client's copy is
replaced), forwarded headers are only believed from configured proxies, preflights never
reach a service, and a 429 stays readable by a page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.edgesync import CORS_FILE, EDGE_PROOF_FILE, ROUTES_FILE

pytestmark = pytest.mark.integration

ORIGIN = "https://app.example"
EDGE_SECRET = "edge-test-secret"
FORGED = {
    "X-Aisopod-Principal": "forged-admin",
    "X-Aisopod-Role": "admin",
    "X-Aisopod-Scopes": "operator.admin",
    "X-Aisopod-Auth-Method": "forged",
    "X-Aisopod-Client-Ip": "10.9.9.9",
    "X-Aisopod-Conn-Id": "forged-conn",
    "Aisopod-Principal": "forged-bare",
}


@dataclass
class Recorder:
    """An HTTP server that records each request's path and headers and answers per `reply`."""

    reply: object  # (path, headers) -> (status, headers, body)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.calls.append((self.path, headers))
                status, extra, body = recorder.reply(self.path, headers)  # type: ignore[operator]
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET
            do_OPTIONS = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _echo(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    if path.startswith("/v1/limited"):  # what http-api answers a client over its limit
        return 429, {"Retry-After": "7", "Content-Type": "application/json"}, b'{"ok":false}'
    body = json.dumps({"path": path, "headers": headers}).encode()
    return 200, {"Content-Type": "application/json"}, body


@dataclass
class Edge:
    url: str
    backend: Recorder


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_edge(tmp: Path, trusted_ips: list[str]) -> tuple[subprocess.Popen[bytes], Edge]:
    backend = Recorder(_echo)
    backend_url = backend.start()
    up = traefik.Upstreams(
        ws_gateway=[backend_url], http_api=[backend_url], static_ui=[backend_url]
    )
    port, ping = _free_port(), _free_port()
    dynamic = tmp / "dynamic"
    dynamic.mkdir(parents=True)
    (dynamic / ROUTES_FILE).write_text(
        yaml.safe_dump(traefik.dynamic_config(up, entry_points=["web"]))
    )
    (dynamic / CORS_FILE).write_text(yaml.safe_dump(traefik.cors_config([ORIGIN])))
    (dynamic / EDGE_PROOF_FILE).write_text(yaml.safe_dump(traefik.edge_proof_config(EDGE_SECRET)))
    static = traefik.static_config(
        http_address=f"127.0.0.1:{port}",
        https_address=None,
        ping_address=f"127.0.0.1:{ping}",
        dynamic_dir=str(dynamic),
        trusted_ips=trusted_ips,
    )
    (tmp / "traefik.yml").write_text(yaml.safe_dump(static))
    binary = Path(sys.executable).parent / "traefik"
    proc = subprocess.Popen(
        [str(binary), f"--configFile={tmp / 'traefik.yml'}"],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "traefik.log", "wb"),  # noqa: SIM115
    )
    edge = Edge(f"http://127.0.0.1:{port}", backend)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{edge.url}/health", timeout=1).status_code == 200:
                return proc, edge
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError((tmp / "traefik.log").read_text()[-2000:])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    proc, started = _start_edge(tmp_path_factory.mktemp("edge"), trusted_ips=[])
    try:
        yield started
    finally:
        proc.terminate()
        proc.wait(20)
        started.backend.stop()


def _backend_saw(edge: Edge, path: str) -> dict[str, str]:
    seen = [headers for p, headers in edge.backend.calls if p == path]
    assert seen, f"the backend never got {path}"
    return seen[-1]


@pytest.mark.parametrize(
    "path",
    ["/v1/models?n=1", "/hooks/wake?n=2", "/ws?n=3", "/health?n=4", "/some/ui/page?n=5"],
)
def test_forged_identity_headers_never_reach_a_service(edge: Edge, path: str) -> None:
    headers = {
        **FORGED,
        "Authorization": "Bearer good-token",
        "X-Aisopod-Session-Key": "s1",
        "X-Aisopod-Edge": "forged-proof",
    }
    response = httpx.get(f"{edge.url}{path}", headers=headers, timeout=5)
    assert response.status_code == 200
    seen = _backend_saw(edge, path)
    for name, forged in FORGED.items():
        assert seen.get(name.lower()) != forged, name
    assert seen["x-aisopod-session-key"] == "s1"  # a client header that is not identity
    assert seen["authorization"] == "Bearer good-token"  # the service asks auth about it
    # The proof: Traefik's own on the service routes, the client's copy nowhere.
    to_a_service = not path.startswith("/some/ui")
    assert seen.get("x-aisopod-edge") == (EDGE_SECRET if to_a_service else None), path


def test_forwarded_headers_from_an_untrusted_client_are_replaced(edge: Edge) -> None:
    spoof = {"X-Forwarded-For": "203.0.113.7", "X-Real-Ip": "203.0.113.7"}
    assert httpx.get(f"{edge.url}/health?xff=1", headers=spoof, timeout=5).is_success
    seen = _backend_saw(edge, "/health?xff=1")
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-real-ip"] == "127.0.0.1"


def test_forwarded_headers_from_a_trusted_proxy_are_kept(tmp_path: Path) -> None:
    proc, trusted = _start_edge(tmp_path, trusted_ips=["127.0.0.1/32"])
    try:
        spoof = {"X-Forwarded-For": "203.0.113.7"}
        assert httpx.get(f"{trusted.url}/health?xff=2", headers=spoof, timeout=5).is_success
        seen = _backend_saw(trusted, "/health?xff=2")
        assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(20)
        trusted.backend.stop()


def _requests_seen(edge: Edge) -> int:
    # Traefik's own health checks (/ready) hit the backend on their own schedule.
    return len([p for p, _ in edge.backend.calls if p != "/ready"])


def test_preflight_is_answered_by_traefik_without_credentials(edge: Edge) -> None:
    before = _requests_seen(edge)
    preflight = httpx.options(
        f"{edge.url}/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=5,
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert _requests_seen(edge) == before


def test_rate_limited_answer_keeps_retry_after_readable_by_the_page(edge: Edge) -> None:
    response = httpx.get(f"{edge.url}/v1/limited", headers={"Origin": ORIGIN, **FORGED}, timeout=5)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "retry-after" in exposed and "x-request-id" in exposed
