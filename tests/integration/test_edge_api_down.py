"""No http-api replica up: the API's paths still answer in the API's error shape, with a
request id. A real Traefik with the gateway's rendered routes fails over from a dead
http-api to the real static server (the Control UI's Caddyfile), which answers them 503.
The forwardAuth hops are left out of the routers (nothing to authenticate against here)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.paths import binary
from aisopod_ops.launcher.ports import pick

pytestmark = pytest.mark.integration

CADDYFILE = Path(__file__).resolve().parents[2] / "services/static-ui/Caddyfile"


def _wait(url: str, proc: subprocess.Popen[bytes], ok: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == ok:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, f"exited {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered {ok}")


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "dist"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>ui</title>")
    ui_port, port, ping, dead = pick(0), pick(0), pick(0), pick(0)
    caddy_env = {
        **os.environ,
        "AISOPOD_UI_BIND": "127.0.0.1",
        "AISOPOD_UI_PORT": str(ui_port),
        "AISOPOD_UI_ROOT": str(root),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    caddy = subprocess.Popen(
        [binary("caddy"), "run", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
        env=caddy_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dynamic_dir = tmp_path / "dynamic"
    dynamic_dir.mkdir()
    static = traefik.static_config(
        http_address=f"127.0.0.1:{port}",
        https_address=None,
        ping_address=f"127.0.0.1:{ping}",
        dynamic_dir=str(dynamic_dir),
        trusted_ips=["127.0.0.1/32"],
    )
    ui = f"http://127.0.0.1:{ui_port}"
    upstreams = traefik.Upstreams(
        ws_gateway=[ui],
        http_api=[f"http://127.0.0.1:{dead}"],  # nothing listens: every check fails
        static_ui=[ui],
    )
    dynamic = traefik.dynamic_config(upstreams, entry_points=["web"])
    dynamic["http"]["middlewares"].update(traefik.cors_config([])["http"]["middlewares"])
    proof = traefik.edge_proof_config("api-down-edge-secret")
    dynamic["http"]["middlewares"].update(proof["http"]["middlewares"])
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    (dynamic_dir / "routes.yml").write_text(yaml.safe_dump(dynamic))
    log = open(tmp_path / "traefik.log", "wb")  # noqa: SIM115
    proxy = subprocess.Popen(
        [binary("traefik"), f"--configFile={tmp_path / 'traefik.yml'}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(ui + "/", caddy, 200)
        _wait(base + "/v1/models", proxy, 503)  # once the health check marked it down
        yield base
    finally:
        for proc in (proxy, caddy):
            proc.terminate()
            proc.wait(10)
        log.close()


def test_api_paths_answer_503_in_the_api_shape_with_a_request_id(edge: str) -> None:
    with httpx.Client(base_url=edge, trust_env=False, timeout=10) as client:
        reply = client.post("/v1/chat/completions", json={}, headers={"X-Request-Id": "r-1"})
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "service_unavailable"
        assert reply.headers["x-request-id"] == "r-1"
        for path in ("/status", "/ready", "/canvas/x.html"):
            reply = client.get(path)
            assert reply.status_code == 503, path
            assert reply.json()["ok"] is False and reply.headers["x-request-id"], path
        assert client.get("/chat").status_code == 200  # the UI itself is up
