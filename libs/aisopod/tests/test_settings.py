"""ServiceSettings from the environment (AISOPOD_*, secrets also from *_FILE) and the
launcher's readiness probe."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from aisopod.settings import ServiceSettings, nats_servers
from aisopod_ops.launcher.edgeservice import EdgeSettings
from aisopod_ops.launcher.edgesync import nats_connector
from aisopod_ops.launcher.probe import http_probe, http_status


class _WithExtra(ServiceSettings):
    public_url: str | None = None


def test_environment_fills_fields_and_converts_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOPOD_PORT", "8123")
    monkeypatch.setenv("AISOPOD_NATS_URL", "nats://example:4222")
    monkeypatch.setenv("aisopod_log_level", "DEBUG")  # names are case-insensitive
    monkeypatch.setenv("AISOPOD_STATE_DIR", "/var/lib/aisopod")
    monkeypatch.setenv("AISOPOD_NOT_A_FIELD", "ignored")
    settings = ServiceSettings()
    assert settings.port == 8123
    assert settings.nats_url == "nats://example:4222"
    assert settings.log_level == "DEBUG"
    assert settings.state_dir == Path("/var/lib/aisopod")
    assert not hasattr(settings, "not_a_field")


def test_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOPOD_SERVICE", "from-env")
    monkeypatch.setenv("AISOPOD_PORT", "1")
    settings = ServiceSettings(service="ws-gateway")
    assert settings.service == "ws-gateway"
    assert settings.port == 1


def test_invalid_environment_value_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOPOD_PORT", "eighty")
    with pytest.raises(ValueError, match="port"):
        ServiceSettings()


def test_secret_file_wins_over_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.setenv("AISOPOD_NATS_PASSWORD", "from-env")
    monkeypatch.setenv("AISOPOD_NATS_PASSWORD_FILE", str(secret))
    settings = ServiceSettings()
    assert settings.secret("nats_password") == "from-file"
    assert "from-file" not in repr(settings)


def test_unreadable_secret_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AISOPOD_ADMIN_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="AISOPOD_ADMIN_TOKEN_FILE"):
        ServiceSettings()


def test_subclass_fields_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOPOD_PUBLIC_URL", "https://gw.example")
    assert _WithExtra().public_url == "https://gw.example"


def test_edge_settings_split_names_and_read_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISOPOD_TLS_NAMES", "gw.example, 10.1.2.3,,")
    monkeypatch.setenv("AISOPOD_HTTPS_REDIRECT", "true")
    monkeypatch.setenv("AISOPOD_TLS_CERT_FILE", "")
    settings = EdgeSettings()
    assert settings.tls_names == ["gw.example", "10.1.2.3"]
    assert settings.https_redirect is True
    assert settings.tls_cert_file is None
    assert settings.service == "edge-sync"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_probe_reads_the_status_and_fails_closed() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        status = b"200 OK" if request.startswith(b"GET /ready?x=1 ") else b"404 Not Found"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-not-http\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    other = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    other_port = other.sockets[0].getsockname()[1]
    try:
        assert await http_status(f"http://127.0.0.1:{port}/ready?x=1") == 200
        assert await http_status(f"http://127.0.0.1:{port}/other") == 404
        assert await http_probe(f"http://127.0.0.1:{port}/ready?x=1")()
        assert not await http_probe(f"http://127.0.0.1:{port}/other")()
        assert await http_probe(f"http://127.0.0.1:{port}/other", ok=(200, 404))()
        assert await http_status(f"http://127.0.0.1:{other_port}/") is None
        assert await http_status(f"http://127.0.0.1:{_free_port()}/ready") is None
    finally:
        server.close()
        other.close()
        await server.wait_closed()
        await other.wait_closed()


def test_nats_url_lists_split_into_servers() -> None:
    assert nats_servers("nats://a:4222") == ["nats://a:4222"]
    assert nats_servers(" nats://a:1, nats://b:2 ,nats://c:3,") == [
        "nats://a:1",
        "nats://b:2",
        "nats://c:3",
    ]
    with pytest.raises(ValueError):
        nats_servers(" , ")


async def test_edge_sync_connects_through_a_url_list(nats_url: str) -> None:
    # The second entry is a dead port: a cluster with one node down still connects.
    dead = f"nats://127.0.0.1:{_free_port()}"
    connect = nats_connector(f"{nats_url},{dead}", None, None)
    nc = await connect()
    try:
        assert nc.is_connected
    finally:
        await nc.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
