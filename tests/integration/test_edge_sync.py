"""`aisopod edge sync`, the process compose and Kubernetes run instead of the launcher:
against the running stack's NATS with its own read-only user, feeding a real Traefik."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest
import yaml

from aisopod.config.model import GatewayConfig
from aisopod.config.store import ConfigStore
from aisopod_ops.launcher import traefik
from aisopod_ops.launcher.edgesync import CORS_FILE, REDIRECT_FILE, ROUTES_FILE, TLS_FILE
from aisopod_ops.launcher.tls import current_names, fingerprint

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_ROUTES = REPO / "deploy" / "traefik" / "compose" / "dynamic"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EdgeSyncProcess:
    proc: subprocess.Popen[bytes]
    url: str
    dynamic: Path
    tls: Path


def _start(stack, tmp: Path, **extra: str) -> EdgeSyncProcess:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISOPOD_")}
    env.update(
        {
            "AISOPOD_HOST": "127.0.0.1",
            "AISOPOD_PORT": str(port),
            "AISOPOD_NATS_URL": stack.nats_url,
            "AISOPOD_NATS_USER": "edge-sync",
            "AISOPOD_NATS_PASSWORD_FILE": str(
                stack.state_dir / "secrets" / "nats-edge-sync.password"
            ),
            "AISOPOD_DYNAMIC_DIR": str(tmp / "dynamic"),
            "AISOPOD_STATIC_DIR": str(COMPOSE_ROUTES),
            "AISOPOD_TLS_DIR": str(tmp / "tls"),
            **extra,
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "aisopod_ops.cli", "edge", "sync"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "edge-sync.log", "wb"),  # noqa: SIM115
    )
    edge = EdgeSyncProcess(proc, f"http://127.0.0.1:{port}", tmp / "dynamic", tmp / "tls")
    deadline = time.monotonic() + 90  # a cold interpreter on a busy 2-core machine is slow
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{edge.url}/ready", timeout=1).status_code == 200:
                return edge
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError((tmp / "edge-sync.log").read_text()[-3000:])


def _stop(edge: EdgeSyncProcess) -> int:
    edge.proc.send_signal(signal.SIGTERM)
    return edge.proc.wait(15)


@pytest.fixture(scope="module")
def edge_sync(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeSyncProcess]:
    edge = _start(
        stack,
        tmp_path_factory.mktemp("edge-sync"),
        AISOPOD_TLS_NAMES="gw.example, 10.1.2.3",
        AISOPOD_HTTPS_REDIRECT="true",
        AISOPOD_HTTPS_PUBLIC_PORT="8443",
        AISOPOD_TLS_CERT_FILE="",  # compose passes unset options as empty strings
    )
    yield edge
    assert _stop(edge) == 0


async def _set_origins(stack, origins: list[str]) -> list[str]:
    nc = await nats.connect(
        stack.nats_url, user="admin", password=stack.nats_password("admin"), connect_timeout=2
    )
    try:
        store = ConfigStore(await nc.jetstream().key_value("config"))
        snapshot = await store.load()
        document = snapshot.config.document()
        document["cors"] = {**document.get("cors", {}), "allowedOrigins": origins}
        await store.write(GatewayConfig.model_validate(document), snapshot.hash)
        return list(snapshot.config.cors.allowed_origins)
    finally:
        await nc.close()


def test_edge_sync_writes_traefiks_files(edge_sync: EdgeSyncProcess) -> None:
    dynamic = edge_sync.dynamic
    assert (dynamic / ROUTES_FILE).read_text() == (COMPOSE_ROUTES / ROUTES_FILE).read_text()
    assert current_names(edge_sync.tls) >= {"gw.example", "10.1.2.3", "127.0.0.1", "localhost"}
    tls_config = yaml.safe_load((dynamic / TLS_FILE).read_text())
    cert = tls_config["tls"]["stores"]["default"]["defaultCertificate"]["certFile"]
    assert Path(cert) == edge_sync.tls / "server.crt"
    redirect = yaml.safe_load((dynamic / REDIRECT_FILE).read_text())
    assert redirect["http"]["middlewares"]["redirect-https"]["redirectScheme"]["port"] == "8443"
    assert (dynamic / CORS_FILE).exists()


async def test_edge_sync_follows_the_config_in_files_and_over_http(
    stack, edge_sync: EdgeSyncProcess
) -> None:
    origin = "https://edge-sync.example"
    before = await _set_origins(stack, [origin])
    try:
        deadline = time.monotonic() + 30
        served: dict = {}
        while time.monotonic() < deadline:
            served = (await asyncio.to_thread(httpx.get, f"{edge_sync.url}/traefik/dynamic")).json()
            if origin in (edge_sync.dynamic / CORS_FILE).read_text() and served == (
                traefik.cors_config([origin])
            ):
                break
            await asyncio.sleep(0.1)
        assert served == traefik.cors_config([origin])  # Traefik's HTTP provider (k8s)
        assert origin in (edge_sync.dynamic / CORS_FILE).read_text()  # the file (compose)
    finally:
        await _set_origins(stack, before)


def test_traefik_serves_what_edge_sync_wrote(edge_sync: EdgeSyncProcess, tmp_path: Path) -> None:
    """Traefik on edge-sync's directory (as in compose): HTTPS with the generated
    certificate, plain HTTP redirected to the public HTTPS port."""
    http_port, https_port, ping = _free_port(), _free_port(), _free_port()
    static = traefik.static_config(
        http_address=f"127.0.0.1:{http_port}",
        https_address=f"127.0.0.1:{https_port}",
        ping_address=f"127.0.0.1:{ping}",
        dynamic_dir=str(edge_sync.dynamic),
        trusted_ips=[],
    )
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump(static))
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "traefik"), f"--configFile={tmp_path / 'traefik.yml'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        context = ssl.create_default_context(cafile=str(edge_sync.tls / "ca.crt"))
        deadline = time.monotonic() + 60
        served = ""
        while time.monotonic() < deadline and not served:
            try:
                with (
                    socket.create_connection(("127.0.0.1", https_port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="gw.example") as conn,
                ):
                    served = hashlib.sha256(conn.getpeercert(binary_form=True) or b"").hexdigest()
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        assert served == fingerprint(edge_sync.tls / "server.crt")
        redirect = httpx.get(f"http://127.0.0.1:{http_port}/v1/models?x=1", timeout=5)
        assert redirect.status_code in (301, 308)
        assert redirect.headers["location"] == "https://127.0.0.1:8443/v1/models?x=1"
    finally:
        proc.terminate()
        proc.wait(20)


def test_kubernetes_mode_serves_cors_without_files(stack, tmp_path: Path) -> None:
    edge = _start(stack, tmp_path, AISOPOD_WRITE_FILES="false")
    try:
        served = httpx.get(f"{edge.url}/traefik/dynamic", timeout=5).json()
        assert "cors" in served["http"]["middlewares"]
        assert not edge.dynamic.exists() and not edge.tls.exists()
    finally:
        assert _stop(edge) == 0
